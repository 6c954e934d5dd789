package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// usage is the top-level help.
const usage = `carefhir is a FHIR R4 server for primary-care care coordination.

Usage:
  carefhir [serve] [flags]   serve the FHIR API (the default)
  carefhir version           print the version and the FHIR release
  carefhir bench [flags]     load a running server and measure it
  carefhir bench search      measure searches on a SQLite data directory
  carefhir bench care        measure caseloads and cohorts on a SQLite data directory
  carefhir synth [flags]     generate fictional UK primary-care records
  carefhir reindex [flags]   rebuild the search index of the stored resources

Run 'carefhir <command> -h' for the flags of a command.
`

// run executes the command line args (without the program name). ctx ends
// the serve and bench commands; getenv supplies environment defaults.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseServeConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		info, ok := debug.ReadBuildInfo()
		return serve(ctx, cfg, engines(), newLogger(stderr, cfg.LogFormat, cfg.LogLevel), moduleVersion(info, ok))
	case "version":
		if len(rest) > 0 {
			return &usageError{err: fmt.Errorf("version: unexpected argument %q", rest[0])}
		}
		info, ok := debug.ReadBuildInfo()
		return printVersion(stdout, info, ok)
	case "bench":
		if len(rest) > 0 && rest[0] == "care" {
			cfg, err := parseBenchCareConfig(rest[1:], stderr)
			if err != nil {
				return err
			}
			return benchCare(ctx, cfg, stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "search" {
			cfg, err := parseBenchSearchConfig(rest[1:], stderr)
			if err != nil {
				return err
			}
			return benchSearch(ctx, cfg, stdout, stderr)
		}
		cfg, err := parseBenchConfig(rest, stderr)
		if err != nil {
			return err
		}
		return bench(ctx, cfg, stdout)
	case "synth":
		cfg, err := parseSynthConfig(rest, stderr)
		if err != nil {
			return err
		}
		return runSynth(ctx, cfg, stdout, stderr)
	case "reindex":
		cfg, err := parseReindexConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return reindex(ctx, cfg, engines(), stdout, stderr)
	case "help":
		_, err := io.WriteString(stdout, usage)
		return err
	}
	return &usageError{err: fmt.Errorf("unknown command %q\n\n%s", cmd, strings.TrimSpace(usage))}
}
