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
	"time"

	"github.com/urfave/cli/v2"

	"golang.org/x/term"

	"github.com/ferry-oss/ferry/cache"
	"github.com/ferry-oss/ferry/i18n"
	"github.com/ferry-oss/ferry/internal/safe"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
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

// usagef is a usage error with a catalog message (format is its English).
func usagef(format string, args ...any) error { return usageError{tr().Errorf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	setMemoryLimit(4) // save, upload and sync set it again for their --jobs
	stopProfiles := startProfiles()
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stopProfiles()
	stop()
	os.Exit(code)
}

// run executes ferry with args and returns the exit code. Every command
// gets the same treatment here, new ones included: global flags are
// accepted before or after the command (interspersed), and exitCode maps
// the returned error to 2 (usage: the invocation or an input it names is
// wrong) or 1 (failure while doing the work).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	p := i18n.New(chooseLang(args, os.Getenv))
	printer.Store(p)
	app := newApp(stdin, stdout, stderr)
	localize(app, p)
	args, cmdPath := interspersed(app, imageTransmitOut(args))
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	switch {
	case code == exitUsage:
		help := "ferry --help"
		if cmdPath != "" {
			help = "ferry " + cmdPath + " --help"
		}
		tr().Fprintf(stderr, "ferry: %v\nRun '%s' for usage.\n", safe.Error(err), help)
	case errors.Is(err, context.Canceled):
		tr().Fprintf(stderr, "ferry: interrupted; nothing was left looking complete\n")
	case errors.Is(err, errReported):
		// the command printed its summary
	default:
		fmt.Fprintf(stderr, "ferry: %s\n", safe.Error(err))
	}
	return code
}

// errReported ends a command that already printed what went wrong.
var errReported = errors.New("failed")

// exitCode is the one rule for exit codes: 2 when the invocation or an
// input it names (flags, arguments, cfg.yaml, image list, meta file,
// output directory) is wrong, before any work started; 1 for a failure
// while working (registry, engine, network, digests, corrupt parts).
func exitCode(err error) int {
	var ue usageError
	var ce cli.ExitCoder
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitFailure
	case errors.As(err, &ue), errors.Is(err, errConfig), errors.Is(err, selection.ErrBadList), errors.Is(err, registry.ErrConfig):
		return exitUsage
	case errors.As(err, &ce) && ce.ExitCode() == exitUsage:
		return exitUsage
	}
	return exitFailure
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
	level          slog.Level
	plain          map[string]bool // registry hosts written http://HOST (plainhttp.go)
	plainAll       bool            // --plain-http
	summary        []string        // what the command did, for notifyEnd (notify.go)
	failed         []transfer.ImageError
	idle           *time.Duration // the command's --timeout, for registry requests (noteTimeouts)
}

// info is where summaries for people go: stderr, or nowhere with -q.
func (e *env) info() io.Writer {
	if e.level > slog.LevelInfo {
		return io.Discard
	}
	return e.stderr
}

// logger is a text logger to stderr (through the progress bars) at the
// chosen level; target, when set, rewrites the values of "target"
// attributes.
func (e *env) logger(target func(string) string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: e.level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if target != nil && a.Key == "target" && a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(target(a.Value.String()))
		}
		return safeAttr(a)
	}}
	return slog.New(slog.NewTextHandler(e.logOut, opts))
}

// safeAttr passes a log attribute's strings and errors through the one
// sanitiser (the message too: slog hands it over as the "msg" attribute).
func safeAttr(a slog.Attr) slog.Attr {
	switch v := a.Value.Resolve(); {
	case v.Kind() == slog.KindString:
		a.Value = slog.StringValue(safe.Line(v.String()))
	case v.Kind() == slog.KindAny:
		if err, ok := v.Any().(error); ok {
			a.Value = slog.StringValue(safe.Line(err.Error()))
		} else if s, ok := v.Any().(fmt.Stringer); ok {
			a.Value = slog.StringValue(safe.Line(s.String()))
		}
	}
	return a
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: tr().Sprintf("print the version")}
	cli.HelpFlag = &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: tr().Sprintf("show help"), DisableDefaultText: true}
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
		Flags: globalFlags(),
		Before: func(c *cli.Context) error {
			level := slog.LevelInfo
			if c.Bool("verbose") {
				level = slog.LevelDebug
			}
			if c.Bool("quiet") {
				level = slog.LevelWarn
			}
			e.logOut = &logWriter{w: stderr}
			e.level = level
			e.log = e.logger(nil)
			if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !c.Bool("quiet") && !c.Bool("no-progress") {
				e.term = true
			}
			e.plainAll = c.Bool("plain-http")
			e.cfg = &Config{}
			if file := c.String("config"); file != "" {
				cfg, err := LoadConfig(file)
				if err != nil {
					return usageError{err}
				}
				e.cfg = cfg
			} else if cfg, err := e.imageTransmitHome(); err != nil || cfg != nil {
				if err != nil {
					return usageError{err}
				}
				e.cfg = cfg
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.ShowAppHelp(c)
			}
			return usagef("unknown command %q%s", c.Args().First(), didYouMean(c.Args().First(), commandNames(c.App.Commands)))
		},
		// A new command is one line here. run() gives it the global flags
		// (before or after its name), flag errors with suggestions and the
		// exit code rule: return usagef/usageError{err} (or openBundle's
		// error) for a bad invocation or input (exit 2), any other error
		// for a failure while working (exit 1), errReported after printing
		// a summary of your own.
		Commands: []*cli.Command{
			saveCommand(e),
			uploadCommand(e),
			syncCommand(e),
			resolveCommand(e),
			verifyCommand(e),
			inspectCommand(e),
			configCommand(e),
			completionCommand(e),
			serveCommand(e),
			exportCommand(e),
			mirrorConfigCommand(e),
			uiCommand(e),
		},
	}
	app.OnUsageError = usageHandler(app.Flags)
	setUsageHandlers(app.Commands)
	e.noteTimeouts(app.Commands)
	return app
}

// setUsageHandlers makes every command's flag errors usage errors with a
// did-you-mean, and an unknown subcommand one too.
func setUsageHandlers(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = usageHandler(cmd.Flags)
		if len(cmd.Subcommands) > 0 && cmd.Action == nil {
			subs := cmd.Subcommands
			name := cmd.Name
			cmd.Action = func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cli.ShowSubcommandHelp(c)
				}
				return usagef("unknown command %q of %s%s", c.Args().First(), name, didYouMean(c.Args().First(), commandNames(subs)))
			}
		}
		setUsageHandlers(cmd.Subcommands)
	}
}

// usageHandler turns urfave/cli's flag errors into usage errors; an
// unknown flag gets the nearest known one as a suggestion.
func usageHandler(flags []cli.Flag) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
			name = strings.TrimLeft(name, "-")
			var names []string
			for _, f := range flags {
				names = append(names, f.Names()...)
			}
			for _, f := range globalFlags() {
				names = append(names, f.Names()...)
			}
			return usagef("unknown flag %s%s", dashed(name), didYouMean(name, names, dashed))
		}
		return usageError{err}
	}
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func commandNames(cmds []*cli.Command) []string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	return names
}

// globalFlags are the flags every command accepts, before or after its
// name.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "cfg.yaml to read", EnvVars: []string{"FERRY_CONFIG"}},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "debug logging"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "warnings and errors only, no progress bars"},
		&cli.BoolFlag{Name: "no-progress", Usage: "log lines instead of progress bars"},
		plainHTTPFlag,
	}
}

// progress returns a progress renderer for the command: bars on a
// terminal, log lines otherwise.
func (e *env) progress() *progress { return e.labelledProgress(nil) }

// labelledProgress is progress with bars named by labels (image and
// layer) instead of digests.
func (e *env) labelledProgress(labels *labeler) *progress {
	if e.term {
		p := newProgress(e.stderr, e.log, labels)
		e.logOut.setProgress(p)
		return p
	}
	return newProgress(nil, e.log, labels)
}

// interspersed moves a command's flags in front of its arguments, so that
// "ferry upload META --target X" works like "ferry upload --target X META"
// (urfave/cli stops parsing flags at the first argument), and global flags
// given after the command in front of it ("ferry save -q ..."). "--" ends
// flags. It also returns the command path ("config check") for messages.
func interspersed(app *cli.App, args []string) ([]string, string) {
	// Shell completion asks with this flag last: urfave/cli must find it
	// there and no "--" before it, or the command would run. Flag order
	// does not matter to completion, so the arguments stay as they are.
	if n := len(args); n > 1 && args[n-1] == "--generate-bash-completion" {
		_, path := interspersed(app, args[:n-1])
		return args, path
	}
	if len(args) < 2 {
		return args, ""
	}
	globals := []string{args[0]}
	i := 1
	globalValue := valueFlags(app.Flags)
	globalNames := flagSpellings(app.Flags)
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" {
		globals = append(globals, args[i])
		if globalValue[args[i]] && i+1 < len(args) {
			i++
			globals = append(globals, args[i])
		}
		i++
	}
	if i >= len(args) {
		return globals, ""
	}
	if args[i] == "--" {
		return append(globals, args[i:]...), ""
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return append(globals, args[i:]...), ""
	}
	path := []string{cmd.Name}
	cmdArgs := []string{args[i]}
	i++
	for len(cmd.Subcommands) > 0 && i < len(args) {
		sub := cmd.Command(args[i])
		if sub == nil {
			break
		}
		cmdArgs = append(cmdArgs, args[i])
		path = append(path, sub.Name)
		cmd = sub
		i++
	}
	takesValue := valueFlags(cmd.Flags)
	own := flagSpellings(cmd.Flags)
	var flags, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		dst := &flags
		if globalNames[name] && !own[name] {
			dst = &globals
		}
		*dst = append(*dst, a)
		if (takesValue[a] || (dst == &globals && globalValue[a])) && i+1 < len(args) {
			i++
			*dst = append(*dst, args[i])
		}
	}
	out := append(globals, cmdArgs...)
	out = append(out, flags...)
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out, strings.Join(path, " ")
}

// valueFlags lists the spellings (-x, --name) of flags that take a value
// as the next argument.
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

// flagSpellings lists every spelling (-x, --x, -name, --name) of flags.
func flagSpellings(flags []cli.Flag) map[string]bool {
	m := map[string]bool{}
	for _, f := range flags {
		for _, n := range f.Names() {
			m["-"+n], m["--"+n] = true, true
		}
	}
	return m
}

// didYouMean returns " (did you mean X?)" for the candidate nearest to
// word, or "" when none is near. show formats the candidate (optional).
func didYouMean(word string, candidates []string, show ...func(string) string) string {
	best, bestDist := "", 0
	w := strings.ToLower(word)
	for _, c := range candidates {
		d := editDistance(w, strings.ToLower(c))
		if len(w) >= 3 && (strings.HasPrefix(strings.ToLower(c), w) || strings.HasPrefix(w, strings.ToLower(c))) {
			d = min(d, 1) // pass for passwd, plat for platforms
		}
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist > max(1, (len(word)+1)/3) {
		return ""
	}
	if len(show) > 0 {
		best = show[0](best)
	}
	return tr().Sprintf(" (did you mean %s?)", best)
}

// editDistance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and swaps of neighbours cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
