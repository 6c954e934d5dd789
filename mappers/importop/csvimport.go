package importop

import (
	"context"
	"errors"
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
	csvIm, err := mcsv.NewImporter(r, m, csvBatch)
	if err != nil {
		if tb := tooBig(err); tb != nil {
			return tb
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
			if tb := tooBig(b.err); tb != nil {
				return tb
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

// tooBig returns the error of a body over the server's limit that err
// wraps, or nil.
func tooBig(err error) error {
	var tb *http.MaxBytesError
	if errors.As(err, &tb) {
		return tb
	}
	return nil
}
