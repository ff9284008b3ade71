// Command ferry moves container images across an air gap: save images from
// registries into bundle files on a connected host, carry the files over,
// verify them and upload them into a registry or a Docker engine.
//
// This package is thin: flags, cfg.yaml, progress rendering and exit codes.
// The work is done by packages bundle, registry, cache and meta.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/cache"
	"golang.org/x/term"
)

// version is set with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error as the user's invocation being wrong.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes ferry with args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, interspersed(app, args))
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ce cli.ExitCoder
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ferry: %v\nRun 'ferry --help' for usage.\n", err)
		return exitUsage
	case errors.As(err, &ce) && ce.ExitCode() == exitUsage:
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return exitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "ferry: interrupted; nothing was left looking complete")
		return exitFailure
	default:
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return exitFailure
	}
}

// env carries what commands share.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	cfg            *Config
	term           bool
	logOut         *logWriter
	cache          *cache.Cache
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version"}
	app := &cli.App{
		Name:                 "ferry",
		Usage:                "move container images across an air gap",
		Version:              version,
		EnableBashCompletion: true,
		Writer:               stdout,
		ErrWriter:            stderr,
		ExitErrHandler:       func(*cli.Context, error) {}, // run() decides
		Description: `On a connected host, save images into bundle files; carry them over;
on the other side verify and upload them into a registry or a Docker engine.

  ferry save --list images.txt --platform linux/amd64 -o /media/usb
  ferry verify /media/usb/ferry_full_20261124T101500Z_meta.yaml
  ferry upload /media/usb/ferry_full_20261124T101500Z_meta.yaml --target registry.local:5000/mirror

Exit codes: 0 success, 1 failure, 2 usage error.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "cfg.yaml to read", EnvVars: []string{"FERRY_CONFIG"}},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "debug logging"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "warnings and errors only, no progress bars"},
			&cli.BoolFlag{Name: "no-progress", Usage: "log lines instead of progress bars"},
		},
		Before: func(c *cli.Context) error {
			level := slog.LevelInfo
			if c.Bool("verbose") {
				level = slog.LevelDebug
			}
			if c.Bool("quiet") {
				level = slog.LevelWarn
			}
			e.logOut = &logWriter{w: stderr}
			e.log = slog.New(slog.NewTextHandler(e.logOut, &slog.HandlerOptions{Level: level}))
			if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !c.Bool("quiet") && !c.Bool("no-progress") {
				e.term = true
			}
			e.cfg = &Config{}
			if file := c.String("config"); file != "" {
				cfg, err := LoadConfig(file)
				if err != nil {
					return usageError{err}
				}
				e.cfg = cfg
			}
			return nil
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		Commands: []*cli.Command{
			saveCommand(e),
			uploadCommand(e),
			verifyCommand(e),
			inspectCommand(e),
			configCommand(e),
			completionCommand(e),
			serveCommand(e),
			exportCommand(e),
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = app.OnUsageError
	}
	return app
}

// progress returns a progress renderer for the command, or nil.
func (e *env) progress() *progress {
	if e.term {
		p := newProgress(e.stderr, e.log)
		e.logOut.setProgress(p)
		return p
	}
	return newProgress(nil, e.log)
}

// interspersed moves a command's flags in front of its arguments, so that
// "ferry upload META --target X" works like "ferry upload --target X META"
// (urfave/cli stops parsing flags at the first argument). "--" ends flags.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := 1
	// global flags, then the command name (and a subcommand)
	takesValue := valueFlags(app.Flags)
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		out = append(out, args[i])
		if takesValue[args[i]] && !strings.Contains(args[i], "=") && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
		i++
	}
	if i >= len(args) {
		return out
	}
	cmd := app.Command(args[i])
	out = append(out, args[i])
	i++
	for cmd != nil && len(cmd.Subcommands) > 0 && i < len(args) {
		sub := cmd.Command(args[i])
		if sub == nil {
			break
		}
		out = append(out, args[i])
		cmd = sub
		i++
	}
	if cmd == nil {
		return append(out, args[i:]...)
	}
	takesValue = valueFlags(cmd.Flags)
	var flags, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			flags = append(flags, a)
			if takesValue[a] && !strings.Contains(a, "=") && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
			continue
		}
		positional = append(positional, a)
	}
	out = append(out, flags...)
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out
}

// valueFlags lists the spellings (-x, --name) of flags that take a value.
func valueFlags(flags []cli.Flag) map[string]bool {
	m := map[string]bool{}
	for _, f := range flags {
		if _, isBool := f.(*cli.BoolFlag); isBool {
			continue
		}
		for _, n := range f.Names() {
			m["-"+n], m["--"+n] = true, true
		}
	}
	return m
}
