package main

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// fhirVersion is the FHIR release the server implements.
const fhirVersion = "4.0.1"

// buildVersion and buildCommit are set when the binary is linked, where the
// build has no VCS information to read (the image is built without .git):
//
//	go build -ldflags "-X main.buildVersion=v1.4.0 -X main.buildCommit=$(git rev-parse HEAD)"
//
// They are the only variables the linker writes; nothing else changes them.
var buildVersion, buildCommit string

// stamp is the version and commit given at link time.
type stamp struct{ version, commit string }

// linked returns the stamp the linker wrote.
func linked() stamp { return stamp{version: buildVersion, commit: buildCommit} }

// moduleVersion returns the version this binary was built from: the one
// stamped at link time, with its commit; else that of the carefhir module,
// a release version, or "(devel)" with the VCS revision when the build
// stamped one.
func moduleVersion(s stamp, info *debug.BuildInfo, ok bool) string {
	if s.version != "" || s.commit != "" {
		v := cmp.Or(s.version, "(devel)")
		if s.commit != "" {
			v += " " + shortRevision(s.commit)
		}
		return v
	}
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
	rev = shortRevision(rev)
	if modified == "true" {
		rev += "+dirty"
	}
	return v + " " + rev
}

// shortRevision returns the first 12 characters of a commit hash.
func shortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// printVersion writes what the version subcommand prints.
func printVersion(w io.Writer, s stamp, info *debug.BuildInfo, ok bool) error {
	goVersion := runtime.Version()
	if ok && info.GoVersion != "" {
		goVersion = info.GoVersion
	}
	_, err := fmt.Fprintf(w, "carefhir %s\nFHIR %s\n%s %s/%s\n",
		moduleVersion(s, info, ok), fhirVersion, goVersion, runtime.GOOS, runtime.GOARCH)
	return err
}
