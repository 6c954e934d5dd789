package bulk

import (
	"bufio"
	"bytes"
	"carefhir/fhir/lexical"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Importer loads NDJSON, such as the files of an export from another
// server, into a FHIR server through its API: in batch Bundles of PUTs,
// so each resource keeps its id and goes through the server's validation,
// access decisions and hooks like any update.
type Importer struct {
	// BaseURL is the FHIR base, such as http://127.0.0.1:8080/fhir.
	BaseURL string
	// Token, when set, is sent as a bearer token.
	Token  string
	Client *http.Client
	// Batch is how many resources one Bundle carries; 0: 500.
	Batch int
	// MaxLine bounds one line (one resource) and the body of one Bundle,
	// which holds fewer than Batch resources when they would take more;
	// 0: 10 MiB, the server's default body limit.
	MaxLine int
}

// ImportResult counts what an import did.
type ImportResult struct {
	Loaded int
	// Failed lists, for each resource refused, where it was and why.
	Failed []string
}

// Import loads the resources of r, one JSON resource a line (blank lines
// are skipped); name names r in failures.
func (im *Importer) Import(ctx context.Context, name string, r io.Reader, res *ImportResult) error {
	batch := im.Batch
	if batch <= 0 {
		batch = 500
	}
	max := im.MaxLine
	if max <= 0 {
		max = 10 << 20
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), max)
	var entries []json.RawMessage
	var where []string
	size := 0 // of the Bundle of entries, less its entries' commas
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			// A UTF-8 byte order mark, which some Windows tools begin a
			// file with, is no part of the first resource (RFC 8259 §8.1).
			text = lexical.TrimBOM(text)
		}
		if len(text) == 0 {
			continue
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		at := fmt.Sprintf("%s:%d", name, line)
		if err := json.Unmarshal(text, &head); err != nil || head.ResourceType == "" || head.ID == "" {
			res.Failed = append(res.Failed, at+": not a FHIR resource with a resourceType and an id")
			continue
		}
		entry, err := json.Marshal(map[string]any{
			"resource": json.RawMessage(bytes.Clone(text)),
			"request":  map[string]string{"method": "PUT", "url": head.ResourceType + "/" + head.ID},
		})
		if err != nil {
			return err
		}
		// A Bundle over the server's body limit would be refused whole.
		if len(entries) > 0 && bundleOverhead+size+len(entries)+len(entry) > max {
			if err := im.send(ctx, entries, where, res); err != nil {
				return err
			}
			entries, where, size = entries[:0], where[:0], 0
		}
		entries = append(entries, entry)
		where = append(where, at)
		size += len(entry)
		if len(entries) == batch {
			if err := im.send(ctx, entries, where, res); err != nil {
				return err
			}
			entries, where, size = entries[:0], where[:0], 0
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(entries) > 0 {
		return im.send(ctx, entries, where, res)
	}
	return nil
}

// bundleOverhead is the size of the batch Bundle send writes, without
// its entries.
var bundleOverhead = len(`{"entry":[],"resourceType":"Bundle","type":"batch"}`)

// send posts one batch Bundle and records each entry's outcome. Once ctx
// has ended (the command interrupted) it sends nothing; a batch sent is
// left to be answered whole, so that what it loaded is known rather than
// refused entry by entry as the server's work is cut short.
func (im *Importer) send(ctx context.Context, entries []json.RawMessage, where []string, res *ImportResult) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stopped before %s: %w", where[0], err)
	}
	ctx = context.WithoutCancel(ctx)
	body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "batch", "entry": entries})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(im.BaseURL, "/"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	if im.Token != "" {
		req.Header.Set("Authorization", "Bearer "+im.Token)
	}
	client := im.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("batch of %d from %s: %s: %s", len(entries), where[0], resp.Status, raw)
	}
	var out struct {
		Entry []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("batch response: %w", err)
	}
	if len(out.Entry) != len(entries) {
		return errors.New("batch response: not one entry per request")
	}
	for i, e := range out.Entry {
		if strings.HasPrefix(e.Response.Status, "2") {
			res.Loaded++
			continue
		}
		res.Failed = append(res.Failed, fmt.Sprintf("%s: %s %s", where[i], e.Response.Status, e.Response.Outcome))
	}
	return nil
}
