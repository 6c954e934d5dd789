package operation

import (
	"fmt"
	"io/fs"
	"path"
)

// Definitions reads the OperationDefinitions a package provides beside its
// operations: every .json file of fsys (such as an embedded folder), in
// name order. The host serves them as read-only conformance resources, so
// that the canonical URL of each Operation.Definition can be resolved.
func Definitions(fsys fs.FS) ([][]byte, error) {
	var out [][]byte
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(name) != ".json" {
			return err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("operation definitions: %w", err)
	}
	return out, nil
}
