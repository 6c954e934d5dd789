// Package canonical holds the one rule by which the server chooses among
// resources sharing a canonical url named without a version (a ValueSet,
// a CodeSystem, a Questionnaire): the newest.
package canonical

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"carefhir/store"
)

// DefaultMostVersions is the default bound on the stored resources of one
// url compared to find the newest (Newest): far above the versions of a
// definition a network publishes, yet a bounded few megabytes to read.
const DefaultMostVersions = 100

// Newer reports whether a resource of business version v, updated at
// updated, is newer than one of version than, updated at thanUpdated: of
// a higher version (CompareVersions), or of an equal one updated later.
// R4 leaves the choice to the server (references.html, canonical); this
// picks the one a publisher last released, not the one last corrected.
func Newer(v string, updated time.Time, than string, thanUpdated time.Time) bool {
	d := CompareVersions(v, than)
	return d > 0 || d == 0 && updated.After(thanUpdated)
}

// Newest returns the newest of versions, stored resources sharing a
// canonical url, as Newer orders them; nil when there are none. Only the
// business version of each is decoded: the one chosen is read by its
// caller.
func Newest(versions []*store.Version) (*store.Version, error) {
	var newest *store.Version
	var newestVersion string
	for _, v := range versions {
		var r struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(v.JSON, &r); err != nil {
			return nil, fmt.Errorf("stored %s/%s: %w", v.Type, v.ID, err)
		}
		if newest == nil || Newer(r.Version, v.LastUpdated, newestVersion, newest.LastUpdated) {
			newest, newestVersion = v, r.Version
		}
	}
	return newest, nil
}

// CompareVersions orders two business versions as SemVer orders them,
// since R4 asks that versions be orderable and recommends SemVer
// (resource.html, versions): dot-separated parts compared in turn, numbers
// by value (1.10 after 1.9), other parts as text, a missing part as 0; a
// pre-release after '-' (1.0.0-beta) before its release, build metadata
// after '+' ignored. No version comes before any.
func CompareVersions(a, b string) int {
	a, _, _ = strings.Cut(a, "+")
	b, _, _ = strings.Cut(b, "+")
	if a == "" || b == "" {
		return strings.Compare(a, b)
	}
	coreA, preA, hasPreA := strings.Cut(a, "-")
	coreB, preB, hasPreB := strings.Cut(b, "-")
	if d := compareParts(coreA, coreB); d != 0 || hasPreA == hasPreB && !hasPreA {
		return d
	}
	switch {
	case !hasPreA:
		return 1
	case !hasPreB:
		return -1
	}
	return compareParts(preA, preB)
}

// compareParts compares dot-separated version parts in turn.
func compareParts(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		x, y := "0", "0"
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if d := comparePart(x, y); d != 0 {
			return d
		}
	}
	return 0
}

// comparePart compares numbers by value, of any length, and anything else
// as text; a number comes before text, as in SemVer's pre-releases.
func comparePart(x, y string) int {
	nx, ny := isDigits(x), isDigits(y)
	switch {
	case nx && ny:
		x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
		return cmp.Or(cmp.Compare(len(x), len(y)), strings.Compare(x, y))
	case nx:
		return -1
	case ny:
		return 1
	}
	return strings.Compare(x, y)
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
