// Command carefhir serves the carefhir FHIR R4 API, and measures a running
// server.
//
// Usage:
//
//	carefhir [serve] [flags]   serve the FHIR API (the default)
//	carefhir version           print the version and the FHIR release
//	carefhir bench [flags]     load a running server and measure it
//
// With no flags, carefhir serves http://127.0.0.1:8080/fhir from the embedded
// SQLite engine under ./data. Setting --mongo-uri, or CAREFHIR_MONGO_URI in
// the environment, serves from MongoDB instead. SIGINT or SIGTERM shuts the
// server down gracefully; a second one stops it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	// Care coordination keeps UK calendar dates (Europe/London) wherever
	// the binary runs, with or without the host's zone database.
	_ "time/tzdata"

	"github.com/gin-gonic/gin"

	"carefhir/store/sqlite"
)

func main() {
	if os.Getenv(gin.EnvGinMode) == "" {
		// Gin's debug mode prints its route table to stdout; the server
		// logs through slog instead.
		gin.SetMode(gin.ReleaseMode)
	}
	// Before any database is opened: SQLite's page caches draw from one
	// slab rather than allocating each page (see UsePageMemory). It is
	// address space until pages are cached in it.
	if err := sqlite.UsePageMemory(sqlite.PageMemoryMiB(sqlite.Options{})); err != nil {
		fmt.Fprintf(os.Stderr, "carefhir: %v\n", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// Restore the default behaviour once the first signal has arrived,
		// so that a second one ends a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	err := refuseUnknownVariables(os.Args[1:], os.Environ())
	if err == nil {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on stderr, unless already reported, and returns the
// process exit status: 0 for success or help, 2 for a command line that
// cannot be used, 1 for any other failure.
func exitCode(err error, stderr io.Writer) int {
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		if !usage.printed {
			fmt.Fprintf(stderr, "carefhir: %v\n", err)
		}
		return 2
	}
	fmt.Fprintf(stderr, "carefhir: %v\n", err)
	return 1
}
