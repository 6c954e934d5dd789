package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"carefhir/server/auth"
	"carefhir/store/mongo"
)

// clientAddConfig is the configuration of the client add subcommand.
type clientAddConfig struct {
	AuthFile     string `flag:"auth" validate:"required"`
	ID           string `flag:"id" validate:"required"`
	JWKS         string `flag:"jwks" validate:"required"`
	Scopes       string `flag:"scopes" validate:"required"`
	Organization string `flag:"organization"`
}

func parseClientAddConfig(args []string, stderr io.Writer) (*clientAddConfig, error) {
	cfg := &clientAddConfig{}
	fs := newFlagSet("carefhir client add", "Registers a SMART Backend Services client (a GP system, say) in the auth file.", stderr)
	fs.StringVar(&cfg.AuthFile, "auth", "", "auth `file` to edit; created if missing")
	fs.StringVar(&cfg.ID, "id", "", "client `id`: the iss and sub of its assertions")
	fs.StringVar(&cfg.JWKS, "jwks", "", "the client's public keys: a JWKS `file` or an https URL")
	fs.StringVar(&cfg.Scopes, "scopes", "", "system/ `scopes` the client may be granted, separated by spaces or commas, such as system/Patient.rs,system/Appointment.cruds")
	fs.StringVar(&cfg.Organization, "organization", "", "ODS `code` of the organisation the client acts for (its tokens' organization claim)")
	if err := parseFlags(fs, args, nil, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// clientAdd adds the client to the auth file.
func clientAdd(cfg *clientAddConfig, stdout io.Writer) error {
	scopes := strings.FieldsFunc(cfg.Scopes, func(r rune) bool { return r == ',' || r == ' ' })
	c := auth.Client{ID: cfg.ID, JWKS: cfg.JWKS, Scopes: scopes, Organization: cfg.Organization}
	if err := auth.AddClient(cfg.AuthFile, c); err != nil {
		return fmt.Errorf("client add: %w", err)
	}
	_, err := fmt.Fprintf(stdout, "client %s added to %s with %s; restart the server to apply it\n", cfg.ID, cfg.AuthFile, strings.Join(scopes, " "))
	return err
}

// keysRotateConfig is the configuration of the keys rotate subcommand.
type keysRotateConfig struct {
	DataDir  string `flag:"data" validate:"required_without=MongoURI"`
	MongoURI string `flag:"mongo-uri" validate:"omitempty,mongo_uri"`
}

func parseKeysRotateConfig(args []string, stderr io.Writer) (*keysRotateConfig, error) {
	cfg := &keysRotateConfig{DataDir: "./data"}
	fs := newFlagSet("carefhir keys rotate", "Makes a new key sign the access tokens the server issues. The old key verifies\n"+
		"the tokens it signed until they expire. Restart the servers to apply it.", stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data `directory` of the SQLite database, holding "+auth.KeyringFile)
	fs.StringVar(&cfg.MongoURI, "mongo-uri", "", "MongoDB `URI` of the database whose servers share the keys; when set, the keys are kept there")
	if err := parseFlags(fs, args, nil, cfg); err != nil {
		return nil, err
	}
	if err := refuseOverridden(fs, "data", "mongo-uri", twoStores); err != nil {
		return nil, err
	}
	return cfg, nil
}

func keysRotate(ctx context.Context, cfg *keysRotateConfig, stdout io.Writer) error {
	if cfg.MongoURI != "" {
		st, err := mongo.Open(ctx, cfg.MongoURI)
		if err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		defer st.Close()
		if err := auth.RotateSharedKeys(ctx, st, time.Now()); err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		_, err = fmt.Fprintln(stdout, "new signing key in the MongoDB database; restart the servers to sign with it")
		return err
	}
	// The keyring sits beside the database the server signs for: a
	// directory without one is a mistyped --data, where a new keyring
	// would sign nothing.
	if err := requireDatabase(cfg.DataDir); err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	path := filepath.Join(cfg.DataDir, auth.KeyringFile)
	if err := auth.RotateKeys(path, time.Now()); err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	_, err := fmt.Fprintf(stdout, "new signing key in %s; restart the server to sign with it\n", path)
	return err
}

// runAuthCommand runs "client add", "keys jwks" and "keys rotate".
func runAuthCommand(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch cmd + " " + sub {
	case "client add":
		cfg, err := parseClientAddConfig(args, stderr)
		if err != nil {
			return err
		}
		return clientAdd(cfg, stdout)
	case "keys jwks":
		args, err := parseOperands("carefhir keys jwks", " PUBLIC-KEY.pem",
			"Prints the JWKS of the PEM public keys in the file, for the --jwks file of carefhir client add.", args, stderr)
		if err != nil {
			return err
		}
		if len(args) != 1 {
			return &usageError{err: errors.New("usage: carefhir keys jwks PUBLIC-KEY.pem: prints the JWKS of the PEM public keys")}
		}
		pemData, err := os.ReadFile(args[0])
		if err != nil {
			return fmt.Errorf("keys jwks: %w", err)
		}
		jwks, err := auth.PublicJWKS(pemData)
		if err != nil {
			return fmt.Errorf("keys jwks: %s: %w", args[0], err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", jwks)
		return err
	case "keys rotate":
		cfg, err := parseKeysRotateConfig(args, stderr)
		if err != nil {
			return err
		}
		return keysRotate(ctx, cfg, stdout)
	}
	return &usageError{err: fmt.Errorf("unknown command %q: want carefhir client add, keys jwks or keys rotate", strings.TrimSpace(cmd+" "+sub))}
}
