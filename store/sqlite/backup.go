package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"carefhir/store"
)

// Snapshot writes a consistent copy of the database in dir to the new file
// dst while a server may be using the database: VACUUM INTO reads it in one
// read transaction, which WAL lets run beside the writer, and writes a
// compact copy with no WAL of its own. Copying the files of a live WAL
// database instead can tear the copy.
func Snapshot(ctx context.Context, dir, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("sqlite: snapshot: %s exists", dst)
	}
	db, conn, err := openFile(ctx, dir, false)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("sqlite: snapshot into %s: %w", dst, err)
	}
	return nil
}

// FileInfo describes a database file.
type FileInfo struct {
	SchemaVersion int
	// Resources counts the current, non-deleted resources by type.
	Resources map[string]int64
	// Versions counts every version stored, tombstones included.
	Versions int64
}

// Inspect checks the database file at path, which no one may be using,
// with PRAGMA integrity_check and describes it. It opens the file read-only.
func Inspect(ctx context.Context, path string) (*FileInfo, error) {
	q := url.Values{"mode": {"ro"}}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: inspect %s: %w", path, err)
	}
	defer db.Close()
	if err := integrity(ctx, db); err != nil {
		return nil, fmt.Errorf("sqlite: inspect %s: %w", path, err)
	}
	info, err := describe(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("sqlite: inspect %s: %w", path, err)
	}
	return info, nil
}

// integrity runs PRAGMA integrity_check and returns what it found wrong.
func integrity(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

func describe(ctx context.Context, db *sql.DB) (*FileInfo, error) {
	info := &FileInfo{Resources: map[string]int64{}}
	if err := db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&info.SchemaVersion); err != nil {
		return nil, fmt.Errorf("schema version: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM versions`).Scan(&info.Versions); err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT type, count(*) FROM resources WHERE deleted = 0 GROUP BY type`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		var n int64
		if err := rows.Scan(&typ, &n); err != nil {
			return nil, err
		}
		info.Resources[typ] = n
	}
	return info, rows.Err()
}

// IndexFunc returns the search values of a current version, as the server
// computes them when it writes, or an error if the version cannot be read.
// It returns SkipIndex for a record whose search values only its writer
// knows.
type IndexFunc func(v *store.Version) (store.Index, error)

// SkipIndex is returned by an IndexFunc for a record that is no FHIR
// resource, such as a bulk export job, which the package writing it
// indexes: Verify leaves its search rows unchecked.
var SkipIndex = errors.New("sqlite: search rows not checked")

// CheckFunc returns an error if a version the store holds cannot be read.
type CheckFunc func(v *store.Version) error

// Verify checks the store in dir, which no one may be using: the database's
// integrity, its schema version, that every resource points at its current
// version and no version is beyond it, that every current version is
// readable (index returns no error)
// and that the search rows of each resource are exactly those index gives,
// with none left for deleted or unknown resources, and that every earlier
// version that is not a deletion is readable (check returns no error),
// since vread and history serve it. It calls problem with each problem
// found and returns how many resources and earlier versions it checked;
// an error means it could not check.
func Verify(ctx context.Context, dir string, index IndexFunc, check CheckFunc, problem func(string)) (resources, earlier int, err error) {
	path := dir + string(os.PathSeparator) + FileName
	if _, err := os.Stat(path); err != nil {
		return 0, 0, fmt.Errorf("sqlite: verify: %w", err)
	}
	q := url.Values{"_pragma": {"query_only(1)", "busy_timeout(10000)"}}
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: verify: %w", err)
	}
	defer db.Close()
	if err := integrity(ctx, db); err != nil {
		problem(err.Error())
		return 0, 0, nil
	}
	// One read transaction sees the database as of one commit, so that a
	// server writing beside it changes no resource between the reading of
	// its version and of its search rows.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: verify: %w", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); err != nil {
		return 0, 0, fmt.Errorf("sqlite: verify: schema version: %w", err)
	}
	switch {
	case version > len(migrations):
		problem(fmt.Sprintf("schema version %d, newer than this program's %d: verify it with the carefhir that wrote it", version, len(migrations)))
		return 0, 0, nil
	case version < len(migrations):
		problem(fmt.Sprintf("schema version %d, older than this program's %d: run carefhir migrate, or verify it with the carefhir that wrote it", version, len(migrations)))
		return 0, 0, nil
	}
	for _, t := range searchTables {
		var orphans int64
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name+` x WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.rid = x.rid AND r.deleted = 0)`).Scan(&orphans)
		if err != nil {
			return 0, 0, fmt.Errorf("sqlite: verify: %w", err)
		}
		if orphans > 0 {
			problem(fmt.Sprintf("%s: %d rows of deleted or unknown resources", t.name, orphans))
		}
	}
	if err := strayVersions(ctx, tx, problem); err != nil {
		return 0, 0, fmt.Errorf("sqlite: verify: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `
SELECT r.rid, r.type, r.id, r.version, r.deleted, v.type, v.id, v.version, v.deleted, v.last_updated, v.json
FROM resources r LEFT JOIN versions v ON v.seq = r.seq ORDER BY r.rid`)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: verify: %w", err)
	}
	defer rows.Close()
	checked := 0
	for rows.Next() {
		var (
			rid, rVersion      int64
			rType, rID         string
			rDeleted           bool
			vType, vID         sql.NullString
			vVersion, vUpdated sql.NullInt64
			vDeleted           sql.NullBool
			body               []byte
		)
		if err := rows.Scan(&rid, &rType, &rID, &rVersion, &rDeleted, &vType, &vID, &vVersion, &vDeleted, &vUpdated, &body); err != nil {
			return checked, 0, fmt.Errorf("sqlite: verify: %w", err)
		}
		checked++
		name := rType + "/" + rID
		if vType.String != rType || vID.String != rID || vVersion.Int64 != rVersion || vDeleted.Bool != rDeleted {
			problem(fmt.Sprintf("%s: its current version %d is not the version row it points at", name, rVersion))
			continue
		}
		if rDeleted {
			continue
		}
		v := &store.Version{Type: rType, ID: rID, VersionID: rVersion, JSON: body}
		ix, err := index(v)
		if errors.Is(err, SkipIndex) {
			continue
		}
		if err != nil {
			problem(fmt.Sprintf("%s version %d: %v", name, rVersion, err))
			continue
		}
		if diff, err := compareRows(ctx, tx, rid, &ix); err != nil {
			return checked, 0, fmt.Errorf("sqlite: verify %s: %w", name, err)
		} else if diff != "" {
			problem(fmt.Sprintf("%s: search rows differ from its resource (%s): run carefhir reindex", name, diff))
		}
	}
	if err := rows.Err(); err != nil {
		return checked, 0, fmt.Errorf("sqlite: verify: %w", err)
	}
	earlier, err = earlierVersions(ctx, tx, check, problem)
	if err != nil {
		return checked, earlier, fmt.Errorf("sqlite: verify: %w", err)
	}
	return checked, earlier, nil
}

// earlierVersions checks each version before its resource's current one
// that is not a deletion, in the order they were written, one row in
// memory at a time, and returns how many it checked.
func earlierVersions(ctx context.Context, tx *sql.Tx, check CheckFunc, problem func(string)) (int, error) {
	rows, err := tx.QueryContext(ctx, `
SELECT v.type, v.id, v.version, v.json FROM versions v
JOIN resources r ON r.type = v.type AND r.id = v.id
WHERE v.version < r.version AND v.deleted = 0 ORDER BY v.seq`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	checked := 0
	for rows.Next() {
		v := &store.Version{}
		if err := rows.Scan(&v.Type, &v.ID, &v.VersionID, &v.JSON); err != nil {
			return checked, err
		}
		checked++
		if err := check(v); err != nil {
			problem(fmt.Sprintf("%s/%s version %d: %v", v.Type, v.ID, v.VersionID, err))
		}
	}
	return checked, rows.Err()
}

// strayVersions reports the versions that no resource holds: those of a
// resource with no row in resources, or numbered after its current
// version. vread and history would serve them while read answers that the
// resource is not known, or serves an older version as the current one.
func strayVersions(ctx context.Context, tx *sql.Tx, problem func(string)) error {
	rows, err := tx.QueryContext(ctx, `
SELECT v.type, v.id, count(*) FROM versions v
WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.type = v.type AND r.id = v.id AND r.version >= v.version)
GROUP BY v.type, v.id ORDER BY v.type, v.id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var typ, id string
		var n int64
		if err := rows.Scan(&typ, &id, &n); err != nil {
			return err
		}
		problem(fmt.Sprintf("%s/%s: %d versions after its current version, or of no resource", typ, id, n))
	}
	return rows.Err()
}

// compareRows compares the search rows of resource rid with those ix makes,
// and describes the first difference ("" when none).
func compareRows(ctx context.Context, db conn, rid int64, ix *store.Index) (string, error) {
	want := map[kind][]string{}
	eachRow(ix, func(k kind, param string, values []any) error {
		want[k] = append(want[k], rowKey(param, values))
		return nil
	})
	for _, t := range searchTables {
		cols := indexColumns[t.kind]
		cond := "x.rid = ?"
		if t.where != "" {
			// The rows by id alone that a database written before
			// references were stored once holds are unread, not damage.
			cond += " AND " + t.where
		}
		rows, err := db.QueryContext(ctx, `SELECT p.name, x.`+strings.Join(cols, ", x.")+` FROM `+t.name+` x JOIN params p ON p.pid = x.pid WHERE `+cond, rid)
		if err != nil {
			return "", err
		}
		var got []string
		for rows.Next() {
			var param string
			values := make([]any, len(cols))
			dest := []any{&param}
			for i := range values {
				dest = append(dest, &values[i])
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return "", err
			}
			got = append(got, rowKey(param, values))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", err
		}
		w := slices.Compact(slices.Sorted(slices.Values(want[t.kind])))
		slices.Sort(got)
		if !slices.Equal(w, got) {
			return fmt.Sprintf("%s: %d rows, %d expected", t.name, len(got), len(w)), nil
		}
	}
	return "", nil
}

// rowKey writes a search row as a string, so that rows computed and rows
// read compare equal when their values do.
func rowKey(param string, values []any) string {
	var b strings.Builder
	b.WriteString(param)
	for _, v := range values {
		b.WriteByte(0)
		switch v := v.(type) {
		case nil:
			b.WriteString("NULL")
		case float64:
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		case int64:
			b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 64))
		case int:
			b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 64))
		case []byte:
			b.Write(v)
		case string:
			b.WriteString(v)
		default:
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}
