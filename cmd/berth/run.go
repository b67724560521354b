package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/server"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
// When empty, the module version from the build info is used.
var version string

const usage = `berth is an OCI container registry.

Usage:
  berth serve [-c FILE]        serve the registry (built-in defaults without -c:
                               plain HTTP on 0.0.0.0:5000, storage in ./berth-data)
  berth -c FILE server         the same (Angos spelling)
  berth config check -c FILE   check a configuration file and print every problem
  berth policy explain -c FILE (--token JWT [--no-verify] | --claims F --provider P | --user U | --anonymous)
                       --repository R --action pull|push|delete [--operation OP]
                               explain offline how the access policies decide a request
  berth gc [-c FILE] [--dry-run]
                               collect garbage once: delete blobs no manifest refers
                               to (see docs/gc.md); --dry-run prints what it would free
  berth hash-password [-a bcrypt|argon2id] < password
                               print a password hash for [auth.identity.<id>]
  berth dev-issuer [-addr A]   run a local OIDC issuer to try workload identity
  berth version                print the version
  berth help                   print this help

Configuration reference: docs/configuration.md
`

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

	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve", "server":
		file, err := subcommandFlags(cmd, rest, *configFile)
		if err != nil {
			return usageError(stdout, stderr, err)
		}
		return serve(ctx, file, stderr)
	case "config":
		if len(rest) == 0 || rest[0] != "check" {
			return usageError(stdout, stderr, errors.New(`"config" needs a subcommand: berth config check -c FILE`))
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
	case "version":
		if len(rest) > 0 {
			return usageError(stdout, stderr, fmt.Errorf("version takes no arguments"))
		}
		fmt.Fprintln(stdout, "berth", versionString())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		return usageError(stdout, stderr, fmt.Errorf("unknown command %q", cmd))
	}
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
	// password hashes, tag patterns).
	if err := server.Check(cfg); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return exitError
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

func serve(ctx context.Context, file string, stderr io.Writer) int {
	cfg, err := load(file)
	if err != nil {
		printConfigError(stderr, err)
		return exitError
	}
	logger := newLogger(cfg.Log, stderr)
	logger.Info("starting berth", "version", versionString(), "config", configName(file))
	if err := server.Run(ctx, cfg, file, logger); err != nil {
		logger.Error("server stopped with an error", "err", err)
		return exitError
	}
	return exitOK
}

func configName(file string) string {
	if file == "" {
		return "(defaults)"
	}
	return file
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
