package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"carefhir/ops/logbuf"
)

// usage is the top-level help.
const usage = `carefhir is a FHIR R4 server for primary-care care coordination.

Usage:
  carefhir [serve] [flags]   serve the FHIR API (the default)
  carefhir version           print the version and the FHIR release
  carefhir bench [flags]     load a running server and measure it
  carefhir bench search      measure searches on a SQLite data directory
  carefhir bench hostile     measure normal traffic beside hostile requests
  carefhir bench care        measure caseloads and cohorts on a SQLite data directory
  carefhir bench http        measure reads, a search and metadata against a bare net/http handler
  carefhir synth [flags]     generate fictional UK primary-care records
  carefhir import [flags] FILE... import records from GP systems (GP Connect, PDS, CSV, HL7 v2) or NDJSON
  carefhir export [flags]    export a care record to GP systems (Bundle, CSV, GP Connect booking)
  carefhir reindex [flags]   rebuild the search index of the stored resources
  carefhir client add [flags] register a backend-services client in the auth file
  carefhir keys jwks FILE     print the JWKS of a PEM public key, for client add
  carefhir keys rotate [flags] make a new key sign the server's access tokens
  carefhir migrate [flags]   bring a store's schema and indexes up to this version
  carefhir backup [flags]    copy a running SQLite store into a compressed archive
  carefhir restore [flags]   restore a SQLite store from a backup archive
  carefhir verify [flags]    check a SQLite store, beside its server or on a copy
  carefhir probe [flags]     ask a server on this host if it is live or ready (exit 0 or 1)

Run 'carefhir <command> -h' for the flags of a command.
`

// command splits a command line (without the program name) into the
// command it runs and the command's arguments: serve when it starts with
// a flag or is empty.
func command(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "serve", args
}

// run executes the command line args (without the program name). ctx ends
// the serve and bench commands; getenv supplies environment defaults.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := command(args)
	switch cmd {
	case "serve":
		cfg, err := parseServeConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		info, ok := debug.ReadBuildInfo()
		// The log is written in the background: a line per request
		// written as it is logged would cost each read a system call.
		// Closing it writes every line, those of the shutdown included.
		log := logbuf.New(stderr, logbuf.DefaultInterval)
		err = serve(ctx, cfg, engines(), newLogger(log, cfg.LogFormat, cfg.LogLevel), moduleVersion(linked(), info, ok))
		return errors.Join(err, log.Close())
	case "version":
		rest, err := parseOperands("carefhir version", "",
			"Prints the version of carefhir, the FHIR release it serves and the Go release it was built with.", rest, stderr)
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return &usageError{err: fmt.Errorf("version: unexpected argument %q", rest[0])}
		}
		info, ok := debug.ReadBuildInfo()
		return printVersion(stdout, linked(), info, ok)
	case "bench":
		// The commands that generate or load data (bench, synth) read
		// their command line only, so that a deployment's CAREFHIR_DATA or
		// CAREFHIR_URL never points them at its store.
		if len(rest) > 0 && rest[0] == "hostile" {
			cfg, err := parseBenchHostileConfig(rest[1:], stderr)
			if err != nil {
				return err
			}
			return benchHostile(ctx, cfg, stdout)
		}
		if len(rest) > 0 && rest[0] == "care" {
			cfg, err := parseBenchCareConfig(rest[1:], stderr)
			if err != nil {
				return err
			}
			return benchCare(ctx, cfg, stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "http" {
			cfg, err := parseBenchHTTPConfig(rest[1:], stderr)
			if err != nil {
				return err
			}
			return benchHTTP(ctx, cfg, stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "search" {
			cfg, err := parseBenchSearchConfig(rest[1:], nil, stderr)
			if err != nil {
				return err
			}
			return benchSearch(ctx, cfg, stdout, stderr)
		}
		cfg, err := parseBenchConfig(rest, nil, stderr)
		if err != nil {
			return err
		}
		return bench(ctx, cfg, stdout)
	case "synth":
		cfg, err := parseSynthConfig(rest, nil, stderr)
		if err != nil {
			return err
		}
		return runSynth(ctx, cfg, stdout, stderr)
	case "import":
		cfg, err := parseImportConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return importFiles(ctx, cfg, engines(), stdout, stderr)
	case "export":
		cfg, err := parseExportConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return exportRecords(ctx, cfg, engines(), stdout, stderr)
	case "reindex":
		cfg, err := parseReindexConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return reindex(ctx, cfg, engines(), stdout, stderr)
	case "client", "keys":
		return runAuthCommand(ctx, cmd, rest, stdout, stderr)
	case "migrate":
		cfg, err := parseMigrateConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return runMigrate(ctx, cfg, stdout)
	case "backup":
		cfg, err := parseBackupConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return runBackup(ctx, cfg, stdout, stderr)
	case "restore":
		cfg, err := parseRestoreConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return runRestore(ctx, cfg, os.Stdin, stdout)
	case "verify":
		cfg, err := parseVerifyConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return runVerify(ctx, cfg, stdout)
	case "probe":
		cfg, err := parseProbeConfig(rest, getenv, stderr)
		if err != nil {
			return err
		}
		return probe(ctx, cfg, stdout)
	case "help":
		_, err := io.WriteString(stdout, usage)
		return err
	}
	return &usageError{err: fmt.Errorf("unknown command %q\n\n%s", cmd, strings.TrimSpace(usage))}
}
