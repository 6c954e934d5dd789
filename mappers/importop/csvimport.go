package importop

import (
	"context"
	"io"
	"net/http"
	"time"

	"carefhir/mappers"
	mcsv "carefhir/mappers/csv"
	"carefhir/operation"
)

// csvBatch is how many CSV rows make one Bundle of the import's
// transaction: the file is read a batch at a time, never whole.
const csvBatch = 200

// ImportCSV imports a CSV file mapped by m as one transaction, reading r
// once, a batch of rows at a time, so the file is never held whole: the
// next batch is read and mapped while the store writes the last. Dates of
// birth after the date of now in the UK are refused. progress, when not
// nil, is called after each batch with the rows read so far. The caller
// closes the report.
func ImportCSV(ctx context.Context, st operation.Store, r io.Reader, m *mcsv.Mapping, now time.Time, progress func(rows int)) (*Report, error) {
	rep := &Report{}
	ran := false
	err := st.Transact(ctx, func(tx operation.Store) error {
		if ran {
			// The file cannot be read again.
			return errAgain
		}
		ran = true
		return rep.applyCSV(ctx, tx, r, m, now, progress)
	})
	if err != nil {
		rep.Close()
		return nil, err
	}
	return rep, nil
}

// mapped is a batch of rows mapped, or the error that ended the reading.
type mapped struct {
	res  *mappers.Result
	rows int
	err  error
}

func (rep *Report) applyCSV(ctx context.Context, tx operation.Store, r io.Reader, m *mcsv.Mapping, now time.Time, progress func(rows int)) error {
	body := &bodyReader{r: r}
	csvIm, err := mcsv.NewImporter(body, m, csvBatch)
	if err != nil {
		if body.err != nil {
			return bodyError(body.err)
		}
		return operation.Errorf(http.StatusBadRequest, "invalid", "line 1", "%v", err)
	}
	csvIm.Today = mappers.Today(now)
	batches := make(chan mapped, 2)
	stop := make(chan struct{})
	defer func() {
		// The reader stops after the batch it is reading, before the
		// request ends: the body is not read once the handler returns.
		close(stop)
		for range batches {
		}
	}()
	go func() {
		defer close(batches)
		rows := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := csvIm.Next()
			if err == io.EOF {
				return
			}
			if res != nil {
				rows += csvBatch
			}
			select {
			case batches <- mapped{res: res, rows: rows, err: err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for b := range batches {
		if b.err != nil {
			// The batch was read before it was sent: body.err is set.
			if body.err != nil {
				return bodyError(body.err)
			}
			return operation.Errorf(http.StatusBadRequest, "invalid", "", "%v", b.err)
		}
		if b.res.Bundle == nil && !b.res.Failed() {
			if err := rep.warn(b.res.Issues); err != nil {
				return err
			}
			continue
		}
		if err := rep.apply(ctx, tx, *b.res); err != nil {
			return err
		}
		if progress != nil {
			progress(b.rows)
		}
	}
	return nil
}

// bodyReader reads the request body, keeping the error that ended the
// reading other than its end: the CSV reader reports that error as one
// of the file's, where it is the body's that could not be read (a body
// over the server's limit, gzip cut short).
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}
