package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/berth-registry/berth/docs"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/logbuf"
	"github.com/berth-registry/berth/internal/server"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
// When empty, the module version from the build info is used.
var version string

// commit and date are stamped with version by make release
// (scripts/release.sh: -X main.commit=SHA -X main.date=RFC3339); berth
// version prints them when set.
var commit, date string

const usage = `berth is an OCI container registry.

Usage:
  berth serve [-c FILE | --addr HOST:PORT | --port N]
                               serve the registry (built-in defaults without -c:
                               plain HTTP on 0.0.0.0:5000, storage in ./berth-data)
  berth -c FILE server         the same (Angos spelling)
  berth config check -c FILE   check a configuration file and print every problem
  berth config example         print a configuration file with every key, commented
  berth config schema          print a JSON Schema of the configuration file
  berth policy explain -c FILE (--token JWT [--no-verify] | --claims F --provider P | --user U | --anonymous)
                       --repository R --action pull|push|delete [--operation OP]
                               explain offline how the access policies decide a request
  berth gc [-c FILE] [--dry-run]
                               collect garbage once: delete blobs no manifest refers
                               to (see docs/gc.md); --dry-run prints what it would free
  berth hash-password [-a bcrypt|argon2id] < password
                               print a password hash for [auth.identity.<id>]
  berth dev-issuer [flags]     run a local OIDC issuer to try workload identity
  berth login REGISTRY --provider NAME [--audience AUD] [--token-source SRC]
                               configure docker-credential-berth for REGISTRY in
                               docker's config.json and the containers auth.json
  berth logout REGISTRY        undo berth login
  berth version                print the version
  berth help [COMMAND]         print this help, or COMMAND's

berth COMMAND -h prints COMMAND's usage.
Configuration reference: docs/configuration.md
`

const serveUsage = `usage: berth serve [-c FILE]
       berth serve [--addr HOST:PORT | --port N]
       berth -c FILE server

Serve the registry until SIGINT or SIGTERM. With -c FILE, the configuration
file (reloaded on SIGHUP and when it changes); without it, the built-in
defaults: plain HTTP on 0.0.0.0:5000, storage in ./berth-data, open (anyone
who can reach it may push, pull and delete).

  -c FILE          configuration file (docs/configuration.md)
  --addr HOST:PORT listen address instead of the default 0.0.0.0:5000
                   (":5001" for every address); without -c only
  --port N         listen port instead of 5000 (0: any free port, logged);
                   without -c only: with a file, set [server] port
`

const configUsage = `usage: berth config check -c FILE
       berth config example
       berth config schema

check: check a configuration file as serve would load it (syntax, keys,
types, CEL claim mappings and policies, password hashes, tag patterns)
without serving. Prints every problem as FILE:LINE: KEY: MESSAGE and exits
1, or "config OK" and exits 0; the warnings serve would log at startup are
printed to stderr as FILE: warning: MESSAGE.

example: print a configuration file with every key set to its default, each
after a comment from the reference (docs/configuration.md); optional tables
(TLS, S3, Redis, OIDC providers, users, policies) are commented out.

schema: print a JSON Schema (draft 2020-12) of the configuration file, for
editors (e.g. a "#:schema ./berth.schema.json" first line for taplo).
`

const gcUsage = `usage: berth gc [-c FILE] [--dry-run]

Collect garbage once, online, on the configured storage: blobs no manifest
refers to, untagged manifests, stale temporary files (docs/gc.md).

  -c FILE     configuration file (built-in defaults without it)
  --dry-run   print what would be freed, delete nothing
`

const hashPasswordUsage = `usage: berth hash-password [-a bcrypt|argon2id] < password

Read a password from the first line of standard input and print its hash for
[auth.identity.<id>] password.

  -a ALG   bcrypt (default) or argon2id
`

const versionUsage = `usage: berth version

Print berth's version.
`

const helpUsage = `usage: berth help [COMMAND]

Print berth's usage, or COMMAND's (the same as berth COMMAND -h).
`

// commandUsage is the usage of each command, for -h and berth help COMMAND.
func commandUsage(cmd string) (string, bool) {
	switch cmd {
	case "serve", "server":
		return serveUsage, true
	case "config":
		return configUsage, true
	case "policy":
		return policyUsage + "\n", true
	case "gc":
		return gcUsage, true
	case "hash-password":
		return hashPasswordUsage, true
	case "dev-issuer":
		return devIssuerUsage(), true
	case "login":
		return loginUsage, true
	case "logout":
		return logoutUsage, true
	case "version":
		return versionUsage, true
	case "help":
		return helpUsage, true
	}
	return "", false
}

// helpAsked reports whether a command's arguments ask for its usage: -h,
// -help or --help before any "--".
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed (bad configuration, server error)
	exitUsage = 2 // the command line is wrong
)

// run is the whole command line; main only adds the process around it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("berth", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	configFile := global.String("c", "", "configuration file")
	if err := global.Parse(args); err != nil {
		return usageError(stdout, stderr, err)
	}
	args = global.Args()
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return exitOK
	}

	cmd, rest := args[0], args[1:]
	if text, ok := commandUsage(cmd); ok && helpAsked(rest) {
		fmt.Fprint(stdout, text)
		return exitOK
	}
	switch cmd {
	case "serve", "server":
		return serveCmd(ctx, cmd, rest, *configFile, stdout, stderr)
	case "config":
		if len(rest) > 0 && (rest[0] == "example" || rest[0] == "schema") {
			return configPrint(rest[0], rest[1:], stdout, stderr)
		}
		if len(rest) == 0 || rest[0] != "check" {
			return usageError(stdout, stderr, errors.New(`"config" needs a subcommand: berth config check -c FILE, berth config example or berth config schema`))
		}
		file, err := subcommandFlags("config check", rest[1:], *configFile)
		if err != nil {
			return usageError(stdout, stderr, err)
		}
		if file == "" {
			return usageError(stdout, stderr, errors.New("config check needs -c FILE"))
		}
		return check(file, stdout, stderr)
	case "policy":
		return policyCmd(ctx, rest, *configFile, stdout, stderr)
	case "gc":
		return gcCmd(ctx, rest, *configFile, stdout, stderr)
	case "hash-password":
		return hashPassword(rest, stdin, stdout, stderr)
	case "dev-issuer":
		return devIssuer(ctx, rest, stdout, stderr)
	case "login":
		return loginCmd(ctx, rest, stdout, stderr)
	case "logout":
		return logoutCmd(ctx, rest, stdout, stderr)
	case "version":
		if len(rest) > 0 {
			return usageError(stdout, stderr, fmt.Errorf("version takes no arguments"))
		}
		fmt.Fprintln(stdout, "berth", versionString()+buildStamp())
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		text, ok := commandUsage(rest[0])
		if !ok {
			return usageError(stdout, stderr, fmt.Errorf("help: unknown command %q", rest[0]))
		}
		fmt.Fprint(stdout, text)
		return exitOK
	default:
		return usageError(stdout, stderr, fmt.Errorf("unknown command %q", cmd))
	}
}

// serveCmd parses serve's flags and serves.
func serveCmd(ctx context.Context, name string, args []string, configFile string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := fs.String("c", configFile, "configuration file")
	addr := fs.String("addr", "", "listen address HOST:PORT")
	port := fs.Int("port", -1, "listen port")
	if err := fs.Parse(args); err != nil {
		return usageError(stdout, stderr, fmt.Errorf("%s: %w", name, err))
	}
	if fs.NArg() > 0 {
		return usageError(stdout, stderr, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0)))
	}
	listen, err := listenOverride(*addr, *port)
	if err != nil {
		return usageError(stdout, stderr, fmt.Errorf("%s: %w", name, err))
	}
	if listen != nil && *c != "" {
		// A reload compares the file with the running configuration: an
		// override would read as a [server] change needing a restart.
		return usageError(stdout, stderr, fmt.Errorf("%s: --addr and --port replace the built-in defaults; with -c FILE set [server] bind_address and port in the file", name))
	}
	return serve(ctx, *c, listen, stderr)
}

// listen is the listener --addr or --port asks for.
type listen struct {
	host string // "" keeps the default
	port int
}

func listenOverride(addr string, port int) (*listen, error) {
	switch {
	case addr != "" && port >= 0:
		return nil, errors.New("give --addr or --port, not both")
	case addr != "":
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("--addr %q: want HOST:PORT or :PORT", addr)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return nil, fmt.Errorf("--addr %q: bad port", addr)
		}
		if host == "" {
			host = "0.0.0.0"
		}
		return &listen{host: host, port: n}, nil
	case port > 65535:
		return nil, fmt.Errorf("--port %d: not a TCP port", port)
	case port >= 0:
		return &listen{port: port}, nil
	}
	return nil, nil
}

// subcommandFlags parses a subcommand's own -c (which wins over a -c given
// before the command) and refuses stray arguments.
func subcommandFlags(name string, args []string, configFile string) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := fs.String("c", configFile, "configuration file")
	if err := fs.Parse(args); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return *c, nil
}

// usageError reports a bad command line; -h is not an error.
func usageError(stdout, stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "berth: %v\n\n%s", err, usage)
	return exitUsage
}

// load returns the configuration in file, or the defaults when file is empty.
func load(file string) (*config.Config, error) {
	if file == "" {
		return config.Default(), nil
	}
	return config.Load(file)
}

func check(file string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(file)
	if err != nil {
		printConfigError(stderr, err)
		return exitError
	}
	// Compile what the server would (CEL claim mappings and policies,
	// password hashes, tag patterns), and warn where it would.
	warnings, err := server.CheckWarnings(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return exitError
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", file, w)
	}
	fmt.Fprintln(stdout, "config OK")
	return exitOK
}

// printConfigError prints one "file:line: key: message" line per problem.
func printConfigError(w io.Writer, err error) {
	var errs *config.Errors
	if errors.As(err, &errs) {
		fmt.Fprintln(w, errs.Error())
		return
	}
	fmt.Fprintf(w, "berth: %v\n", err)
}

// configPrint prints the example configuration or the JSON Schema.
func configPrint(sub string, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		return usageError(stdout, stderr, fmt.Errorf("config %s takes no arguments", sub))
	}
	out := config.Example(docs.Configuration)
	if sub == "schema" {
		var err error
		if out, err = config.Schema(docs.Configuration); err != nil {
			fmt.Fprintf(stderr, "berth: config schema: %v\n", err)
			return exitError
		}
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "berth: config %s: %v\n", sub, err)
		return exitError
	}
	return exitOK
}

func serve(ctx context.Context, file string, l *listen, stderr io.Writer) int {
	cfg, err := load(file)
	if err != nil {
		printConfigError(stderr, err)
		return exitError
	}
	if l != nil {
		if l.host != "" {
			cfg.Server.BindAddress = l.host
		}
		cfg.Server.Port = l.port
	}
	// One line per request: batched into a write every logFlush (warnings
	// and errors at once), not a write system call per request.
	lw := logbuf.New(stderr, logFlush)
	defer lw.Close()
	base, err := newLogger(cfg.Log, lw)
	if err != nil {
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return exitError
	}
	logger := slog.New(logbuf.Handler(base.Handler(), lw))
	logger.Info("starting berth", "version", versionString(), "config", configName(file))
	if err := server.Run(ctx, cfg, file, logger); err != nil {
		logger.Error("server stopped with an error", "err", err)
		return exitError
	}
	return exitOK
}

// logFlush is how often serve's buffered log lines are written.
const logFlush = 100 * time.Millisecond

func configName(file string) string {
	if file == "" {
		return "(defaults)"
	}
	return file
}

// newLogger is the logger of [log], at the level BERTH_LOG_LEVEL sets when
// it is set and not empty (it wins over [log] level); an invalid
// BERTH_LOG_LEVEL is an error.
func newLogger(c config.Log, w io.Writer) (*slog.Logger, error) {
	level, err := c.EffectiveLogLevel(os.Getenv(config.LogLevelEnv))
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// buildStamp is " (commit SHA, built DATE)" from the release stamps, or ""
// for a build without them.
func buildStamp() string {
	var parts []string
	if commit != "" {
		parts = append(parts, "commit "+commit)
	}
	if date != "" {
		parts = append(parts, "built "+date)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
				rev := s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
				return "(devel) " + rev
			}
		}
		if v != "" {
			return v
		}
	}
	return "(devel)"
}
