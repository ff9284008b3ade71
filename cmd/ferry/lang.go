package main

import (
	"os"
	"strings"
	"sync/atomic"

	"github.com/urfave/cli/v2"
	"golang.org/x/text/language"
	"gopkg.in/yaml.v3"

	"github.com/ferry-oss/ferry/i18n"
)

// printer is the language of this run's help and messages (run sets it).
var printer atomic.Pointer[i18n.Printer]

// flagStringer is urfave/cli's own rendering of a flag in help.
var flagStringer = cli.FlagStringer

// tr formats messages in the run's language: tr().Sprintf("English %s",
// x) prints the catalog's translation, or the English when it has none.
func tr() *i18n.Printer {
	if p := printer.Load(); p != nil {
		return p
	}
	return i18n.New(i18n.English)
}

// chooseLang is the language of a run: lang in the cfg.yaml that args
// (--config, -c) or FERRY_CONFIG name, then LC_ALL, LC_MESSAGES, LANG.
// The file is read for lang alone here; LoadConfig checks all of it later.
func chooseLang(args []string, getenv func(string) string) language.Tag {
	file := getenv("FERRY_CONFIG")
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(a, "=")
		if name != "--config" && name != "-config" && name != "-c" && name != "--c" {
			continue
		}
		if hasValue {
			file = value
		} else if i+1 < len(args) {
			file = args[i+1]
		}
	}
	var cfg struct {
		Lang string `yaml:"lang"`
	}
	if file != "" {
		if b, err := os.ReadFile(file); err == nil {
			_ = yaml.Unmarshal(b, &cfg)
		}
	}
	return i18n.Choose(cfg.Lang, getenv)
}

// localize translates the help of app and its commands: usage lines,
// descriptions, flag usages and defaults, urfave/cli's headings. The
// English texts in the command definitions are the catalog's keys.
func localize(app *cli.App, p *i18n.Printer) {
	cli.FlagStringer = flagStringer
	if p.Lang() == i18n.English {
		return
	}
	cli.FlagStringer = func(f cli.Flag) string {
		return strings.Replace(flagStringer(f), "(default: ", p.Sprintf("(default: "), 1)
	}
	app.Usage = p.Sprintf(app.Usage)
	app.Description = p.Sprintf(app.Description)
	localizeFlags(app.Flags, p)
	h := helpHeadings(p)
	app.CustomAppHelpTemplate = h.Replace(cli.AppHelpTemplate)
	// urfave/cli adds its help command (and --help) at setup unless the
	// app has one: a translated copy of it, from an app set up for that
	var bare cli.App
	bare.Setup()
	if help := bare.Command("help"); help != nil && app.Command("help") == nil {
		c := *help
		c.Usage = p.Sprintf("Shows a list of commands or help for one command")
		app.Commands = append(app.Commands, &c)
		app.Flags = append(app.Flags, cli.HelpFlag) // which setup adds with the command
	}
	localizeCommands(app.Commands, p, h)
}

func localizeCommands(cmds []*cli.Command, p *i18n.Printer, h *strings.Replacer) {
	for _, c := range cmds {
		c.Usage = p.Sprintf(c.Usage)
		c.Description = p.Sprintf(c.Description)
		localizeFlags(c.Flags, p)
		if len(c.Subcommands) > 0 {
			c.CustomHelpTemplate = h.Replace(cli.SubcommandHelpTemplate)
		} else {
			c.CustomHelpTemplate = h.Replace(cli.CommandHelpTemplate)
		}
		localizeCommands(c.Subcommands, p, h)
	}
}

// localizeFlags translates the usage and default text of every flag (the
// flag types of urfave/cli keep them in fields of the same names).
func localizeFlags(flags []cli.Flag, p *i18n.Printer) {
	for _, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			f.Usage, f.DefaultText = p.Sprintf(f.Usage), p.Sprintf(f.DefaultText)
		case *cli.StringSliceFlag:
			f.Usage, f.DefaultText = p.Sprintf(f.Usage), p.Sprintf(f.DefaultText)
		case *cli.BoolFlag:
			f.Usage, f.DefaultText = p.Sprintf(f.Usage), p.Sprintf(f.DefaultText)
		case *cli.IntFlag:
			f.Usage, f.DefaultText = p.Sprintf(f.Usage), p.Sprintf(f.DefaultText)
		case *cli.DurationFlag:
			f.Usage, f.DefaultText = p.Sprintf(f.Usage), p.Sprintf(f.DefaultText)
		}
	}
}

// helpHeadings translates the headings of urfave/cli's help templates.
func helpHeadings(p *i18n.Printer) *strings.Replacer {
	return strings.NewReplacer(
		"NAME:", p.Sprintf("NAME:"),
		"USAGE:", p.Sprintf("USAGE:"),
		"VERSION:", p.Sprintf("VERSION:"),
		"DESCRIPTION:", p.Sprintf("DESCRIPTION:"),
		"COMMANDS:", p.Sprintf("COMMANDS:"),
		"GLOBAL OPTIONS:", p.Sprintf("GLOBAL OPTIONS:"),
		"OPTIONS:", p.Sprintf("OPTIONS:"),
		"[global options]", p.Sprintf("[global options]"),
		"[command options]", p.Sprintf("[command options]"),
	)
}
