package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-playground/validator/v10"
)

// usageError reports a command line that cannot be used; the process exits
// with status 2. When printed is set, the flag package has already written
// the message and the usage.
type usageError struct {
	err     error
	printed bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// valueError is a flag's refusal of a value that names the value, as the
// command line's errors do; without says why with no part of it, for a
// value set from the environment (see setFromEnv).
type valueError struct {
	err     error
	without string
}

func (e *valueError) Error() string { return e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

// newFlagSet returns a flag set for a subcommand that reports errors instead
// of exiting, and prints usage with the summary to stderr.
func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseOperands parses the command line of a command that has no flags,
// only operands (none for version, a key file for keys jwks), and returns
// the operands: -h and --help print its usage and exit 0, as they do for
// every command with flags, and any other flag is refused.
func parseOperands(name, operands, summary string, args []string, stderr io.Writer) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s%s\n\n%s\n", name, operands, summary)
	}
	if err := fs.Parse(args); err != nil {
		return nil, &usageError{err: err, printed: true}
	}
	return fs.Args(), nil
}

// commandName is the command whose flags fs holds, as its messages name
// it after the program's name: "export" for "carefhir export".
func commandName(fs *flag.FlagSet) string {
	return strings.TrimPrefix(fs.Name(), "carefhir ")
}

// envPrefix starts the name of the environment variable behind every flag.
const envPrefix = "CAREFHIR_"

// envName returns the environment variable that sets a flag: the flag's name
// in upper case with dashes as underscores, after envPrefix. --mongo-uri is
// set by CAREFHIR_MONGO_URI.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// setFromEnv sets each flag of fs whose environment variable (see envName)
// is set and not empty, and returns the names of the flags it set. It runs
// before the command line is parsed, so a flag given on the command line
// wins; a repeatable flag takes one value from its variable and more from
// the command line.
func setFromEnv(fs *flag.FlagSet, getenv func(string) string) (map[string]bool, error) {
	set := map[string]bool{}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			// The value is left out: it may be a secret, such as a URI
			// with a password.
			if ve, ok := errors.AsType[*valueError](err); ok {
				err = errors.New(ve.without)
			}
			errs = append(errs, fmt.Errorf("%s: %s, which sets --%s: %w", commandName(fs), name, f.Name, err))
		}
		set[f.Name] = true
	})
	if len(errs) > 0 {
		return nil, &usageError{err: errors.Join(errs...)}
	}
	return set, nil
}

// parseFlags sets the flags of fs, which are bound to the fields of the
// struct cfg points to, from the environment through getenv (see
// setFromEnv; nil reads no environment) and then from args, refuses
// positional arguments and validates cfg.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string, cfg any) error {
	rest, err := parseFlagsArgs(fs, args, getenv, cfg)
	if len(rest) > 0 {
		return &usageError{err: fmt.Errorf("%s: unexpected argument %q", commandName(fs), rest[0])}
	}
	return err
}

// parseFlagsArgs is parseFlags for a command that takes arguments after
// its flags, such as files: it returns them.
func parseFlagsArgs(fs *flag.FlagSet, args []string, getenv func(string) string, cfg any) ([]string, error) {
	var fromEnv map[string]bool
	if getenv != nil {
		var err error
		if fromEnv, err = setFromEnv(fs, getenv); err != nil {
			return nil, err
		}
		usage := fs.Usage
		fs.Usage = func() {
			usage()
			fmt.Fprintf(fs.Output(), "\nEach flag is also read from %s<FLAG> in the environment, such as %s for --mongo-uri;\nthe command line wins.\n",
				envPrefix, envName("mongo-uri"))
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, &usageError{err: err, printed: true}
	}
	// A flag given on the command line won over its variable.
	fs.Visit(func(f *flag.Flag) { delete(fromEnv, f.Name) })
	return fs.Args(), validate(commandName(fs), cfg, fromEnv)
}

// twoStores is the clash of refuseOverridden between two flags that each
// name a store.
const twoStores = "name two stores: give one"

// refuseOverridden returns a usage error saying clash when the flag lost
// was given a value on the command line of the parsed fs while won, which
// takes precedence over it (naming another store, say), is set: the
// command would ignore the value typed. A lost set by its environment
// variable yields to won without a word, as the container image's
// CAREFHIR_DATA does to CAREFHIR_MONGO_URI.
func refuseOverridden(fs *flag.FlagSet, lost, won, clash string) error {
	typed := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { typed[f.Name] = f.Value.String() != "" })
	if !typed[lost] || fs.Lookup(won).Value.String() == "" {
		return nil
	}
	by := "--" + won
	if !typed[won] {
		by = envName(won) + ", which sets --" + won + ","
	}
	return &usageError{err: fmt.Errorf("%s: --%s and %s %s", commandName(fs), lost, by, clash)}
}

// validate checks a configuration struct of the command name, passed by
// pointer, against its validate tags and reports every failure by the name
// in the field's flag tag, or by its environment variable when fromEnv has
// the flag, each on a line naming the command.
func validate(name string, cfg any, fromEnv map[string]bool) error {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string { return f.Tag.Get("flag") })
	for tag, fn := range map[string]validator.Func{"listen_addr": isListenAddr, "mongo_uri": isMongoURI, "base_url": isBaseURL} {
		if err := v.RegisterValidation(tag, fn); err != nil {
			return fmt.Errorf("register %s: %w", tag, err)
		}
	}
	err := v.Struct(cfg)
	var fieldErrs validator.ValidationErrors
	if !errors.As(err, &fieldErrs) {
		return err
	}
	errs := make([]error, len(fieldErrs))
	for i, fe := range fieldErrs {
		errs[i] = errors.New(name + ": " + describe(cfg, fe, fromEnv))
	}
	return &usageError{err: errors.Join(errs...)}
}

// describe explains a failed validation in terms of the flags a user typed,
// or of the variable that set the flag when fromEnv has it: then without
// its value, which may be a secret.
func describe(cfg any, fe validator.FieldError, fromEnv map[string]bool) string {
	// A map or slice element is named flag[key][index]: the flag alone
	// reads better.
	flagName, _, _ := strings.Cut(fe.Field(), "[")
	name := "--" + flagName
	// quoted and bare name the flag with its value, quoted or not.
	quoted := fmt.Sprintf("%s %q", name, fe.Value())
	bare := fmt.Sprintf("%s %v", name, fe.Value())
	if fromEnv[flagName] {
		name = fmt.Sprintf("%s, which sets --%s", envName(flagName), flagName)
		quoted, bare = name, name
	}
	switch fe.Tag() {
	case "required":
		return name + " is required"
	case "required_without":
		return fmt.Sprintf("%s is required unless --%s is set", name, flagOf(cfg, fe.Param()))
	case "listen_addr":
		return quoted + ": want host:port, such as 127.0.0.1:8080 (port 0 picks a free port)"
	case "http_url":
		return quoted + ": want an absolute http or https URL"
	case "base_url":
		return quoted + ": want an absolute http or https URL without credentials, query or fragment, such as https://fhir.example.nhs.uk/fhir"
	case "datetime":
		// The parameter is a Go layout; say it as a user writes it.
		layout := strings.NewReplacer("2006", "YYYY", "01", "MM", "02", "DD").Replace(fe.Param())
		return fmt.Sprintf("%s: want a date written %s", quoted, layout)
	case "file":
		return quoted + ": want a file that exists"
	case "mongo_uri":
		// The value is left out: a MongoDB URI may carry a password.
		return name + ": want a mongodb:// or mongodb+srv:// URI with a host"
	case "required_with":
		// The field is empty, so it is the flag named by the parameter,
		// which is set, that needs it.
		setFlag := flagOf(cfg, fe.Param())
		if fromEnv[setFlag] {
			return fmt.Sprintf("%s, which sets --%s, needs --%s", envName(setFlag), setFlag, flagName)
		}
		return fmt.Sprintf("--%s needs --%s", setFlag, flagName)
	case "excluded_unless":
		return fmt.Sprintf("%s needs --%s: it is enforced by validation", name, flagOf(cfg, strings.Fields(fe.Param())[0]))
	case "alpha":
		if fromEnv[flagName] {
			return name + " names no resource type such as Patient"
		}
		return fmt.Sprintf("%s: %q is not a resource type such as Patient", name, fe.Value())
	case "oneof":
		return fmt.Sprintf("%s: want one of %s", quoted, strings.ReplaceAll(fe.Param(), " ", ", "))
	case "gt":
		return fmt.Sprintf("%s: want more than %s", bare, fe.Param())
	case "gte", "min":
		return fmt.Sprintf("%s: want at least %s", bare, fe.Param())
	case "lte", "max":
		return fmt.Sprintf("%s: want at most %s", bare, fe.Param())
	}
	return fmt.Sprintf("%s: fails %s", bare, fe.Tag())
}

// flagOf returns the flag tag of the named field of the struct cfg points to.
func flagOf(cfg any, field string) string {
	if f, ok := reflect.TypeOf(cfg).Elem().FieldByName(field); ok {
		return f.Tag.Get("flag")
	}
	return field
}

// isListenAddr accepts what net.Listen("tcp", addr) accepts for a fixed
// address: host:port with a port from 0 to 65535 (0: a free port) and a host
// that is empty (every interface), an IP address or a DNS name. Unlike
// validator's hostname_port it accepts port 0 and IPv6 addresses.
func isListenAddr(fl validator.FieldLevel) bool {
	host, port, err := net.SplitHostPort(fl.Field().String())
	if err != nil {
		return false
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		return false
	}
	return host == "" || net.ParseIP(host) != nil || isDNSName(host)
}

// isDNSName reports whether s is a syntactically valid host name.
func isDNSName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// isBaseURL accepts an absolute http or https URL naming a host, without
// a query or fragment, where the paths the server appends (/Patient/1)
// would land and break every link and Location it serves, and without
// credentials, which every link would carry.
func isBaseURL(fl validator.FieldLevel) bool {
	u, err := url.Parse(fl.Field().String())
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && u.User == nil
}

// isMongoURI accepts a mongodb:// or mongodb+srv:// URI naming a host. The
// driver checks the rest when it connects.
func isMongoURI(fl validator.FieldLevel) bool {
	u, err := url.Parse(fl.Field().String())
	return err == nil && (u.Scheme == "mongodb" || u.Scheme == "mongodb+srv") && u.Host != ""
}

// envParser parses the command line of a command that reads its flags from
// the environment too, dropping the configuration.
type envParser func(args []string, getenv func(string) string, stderr io.Writer) error

// parsesEnv makes an envParser of a command's parse function.
func parsesEnv[T any](parse func([]string, func(string) string, io.Writer) (T, error)) envParser {
	return func(args []string, getenv func(string) string, stderr io.Writer) error {
		_, err := parse(args, getenv, stderr)
		return err
	}
}

// envCommands returns the commands that read their flags from the
// environment too, by name: those that run and maintain a deployment.
func envCommands() map[string]envParser {
	return map[string]envParser{
		"serve":   parsesEnv(parseServeConfig),
		"import":  parsesEnv(parseImportConfig),
		"export":  parsesEnv(parseExportConfig),
		"reindex": parsesEnv(parseReindexConfig),
		"migrate": parsesEnv(parseMigrateConfig),
		"backup":  parsesEnv(parseBackupConfig),
		"restore": parsesEnv(parseRestoreConfig),
		"verify":  parsesEnv(parseVerifyConfig),
		"probe":   parsesEnv(parseProbeConfig),
	}
}

// serviceLink matches the variables Kubernetes sets in every container for
// each Service of the namespace, named after it: a Service named carefhir
// (or carefhir-metrics) gives CAREFHIR_SERVICE_HOST, CAREFHIR_PORT,
// CAREFHIR_PORT_8080_TCP_ADDR and the like, which set no flag and are no
// misspelling of one.
var serviceLink = regexp.MustCompile(`^` + envPrefix + `([A-Z0-9_]+_)?(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// testVariable matches the variables the project's own test suite reads
// (CAREFHIR_CLIENT_TESTS, which .ci/run sets for the whole of go test, and
// CAREFHIR_TEST_MONGO_URI), so that a server a test starts in that
// environment is not stopped by them.
var testVariable = regexp.MustCompile(`^` + envPrefix + `(CLIENT_TESTS|TEST_[A-Z0-9_]+)$`)

// refuseUnknownVariables returns a usage error naming each variable of
// environ (KEY=value pairs, as os.Environ returns them) that starts with
// envPrefix, is not empty and sets no flag of any command of envCommands,
// when args runs one of them: a misspelt variable would otherwise leave
// its flag at its default without a word, where a misspelt flag is
// refused. Every command's variables are accepted by each, since one
// environment serves them all (backup runs in the container serve runs
// in, with its CAREFHIR_ADDR); so are those of Kubernetes' Services
// (serviceLink) and of the test suite (testVariable).
func refuseUnknownVariables(args, environ []string) error {
	name, _ := command(args)
	commands := envCommands()
	if commands[name] == nil {
		return nil
	}
	known := map[string]bool{}
	record := func(v string) string {
		known[v] = true
		return ""
	}
	for _, parse := range commands {
		// Help parses no flag, but each flag's variable is read first.
		parse([]string{"-h"}, record, io.Discard)
	}
	var unknown []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix) && v != "" && !known[k] && !serviceLink.MatchString(k) && !testVariable.MatchString(k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return &usageError{err: fmt.Errorf("%s: no flag is read from %s: correct the name, or unset it (%s<FLAG> sets --<flag>, such as %s for --mongo-uri)",
		name, strings.Join(unknown, " or "), envPrefix, envName("mongo-uri"))}
}
