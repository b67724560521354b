package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/berth-registry/berth/internal/server"
)

// gcCmd runs garbage collection once: berth gc [-c FILE] [--dry-run].
func gcCmd(ctx context.Context, args []string, configFile string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := fs.String("c", configFile, "configuration file")
	dryRun := fs.Bool("dry-run", false, "print what would be freed, delete nothing")
	if err := fs.Parse(args); err != nil {
		return usageError(stdout, stderr, fmt.Errorf("gc: %w", err))
	}
	if fs.NArg() > 0 {
		return usageError(stdout, stderr, fmt.Errorf("gc: unexpected argument %q", fs.Arg(0)))
	}
	cfg, err := load(*c)
	if err != nil {
		printConfigError(stderr, err)
		return exitError
	}
	logger, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "berth: gc: %v\n", err)
		return exitError
	}
	rep, err := server.CollectGarbage(ctx, cfg, *dryRun, gcClock(), logger)
	if err != nil {
		fmt.Fprintf(stderr, "berth: gc: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, rep)
	if *dryRun {
		for _, f := range rep.TempFileList {
			fmt.Fprintf(stdout, "would remove stale temp file %s (%d bytes, last written %s)\n", f.Path, f.Size, f.Modified.UTC().Format(time.RFC3339))
		}
	}
	return exitOK
}
