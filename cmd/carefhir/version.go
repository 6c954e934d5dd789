package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// fhirVersion is the FHIR release the server implements.
const fhirVersion = "4.0.1"

// moduleVersion returns the version of the carefhir module this binary was
// built from: a release version, or "(devel)" with the VCS revision when the
// build stamped one.
func moduleVersion(info *debug.BuildInfo, ok bool) string {
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	if v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "+dirty"
	}
	return v + " " + rev
}

// printVersion writes what the version subcommand prints.
func printVersion(w io.Writer, info *debug.BuildInfo, ok bool) error {
	goVersion := runtime.Version()
	if ok && info.GoVersion != "" {
		goVersion = info.GoVersion
	}
	_, err := fmt.Fprintf(w, "carefhir %s\nFHIR %s\n%s %s/%s\n",
		moduleVersion(info, ok), fhirVersion, goVersion, runtime.GOOS, runtime.GOARCH)
	return err
}
