package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// valueCompletions are the values offered after a flag (bash, zsh, fish):
// a word list, or a file pattern when it starts with "*".
var valueCompletions = map[string]string{
	"compress": "none zstd gzip xz lz4",
	"platform": "linux/amd64 linux/arm64 linux/arm/v7 linux/386 linux/ppc64le linux/s390x windows/amd64",
	"target":   "docker containerd",
	"inc":      "*_meta.yaml",
}

// metaArgs are the commands whose argument is a meta file.
var metaArgs = []string{"upload", "verify", "inspect"}

func completionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: `Examples:
  source <(ferry completion bash)
  ferry completion fish > ~/.config/fish/completions/ferry.fish`,
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(e.stdout, bashCompletion(c.App))
			case "zsh":
				fmt.Fprint(e.stdout, "autoload -U +X bashcompinit && bashcompinit\n"+bashCompletion(c.App))
			case "fish":
				fmt.Fprint(e.stdout, fishCompletion(c.App))
			default:
				return usagef("completion takes bash, zsh or fish")
			}
			return nil
		},
	}
}

// bashCompletion asks ferry itself for commands and flags
// (--generate-bash-completion) and completes flag values and meta file
// arguments from the tables above.
func bashCompletion(app *cli.App) string {
	var b strings.Builder
	b.WriteString(`_ferry_complete() {
  local cur prev cmd opts
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  cmd=""
  for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) ;; *) cmd="$w"; break ;; esac
  done
  case "$prev" in
`)
	for _, flag := range sortedKeys(valueCompletions) {
		v := valueCompletions[flag]
		pattern := strings.Join(spellings(app, flag), "|")
		if strings.HasPrefix(v, "*") {
			fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -f -X '!%s' -- \"$cur\") $(compgen -d -- \"$cur\")); return 0 ;;\n", pattern, v)
		} else {
			fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return 0 ;;\n", pattern, v)
		}
	}
	b.WriteString(`    --list|-l|--lst|--config|-c|--ca-file) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    --out|-o|--cache) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
  esac
  if [[ "$cur" != -* ]]; then
    case "$cmd" in
      ` + strings.Join(metaArgs, "|") + `) COMPREPLY=($(compgen -f -X '!*_meta.yaml' -- "$cur") $(compgen -d -- "$cur")); return 0 ;;
    esac
  fi
  if [[ "$cur" == -* ]]; then
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  [[ ${#COMPREPLY[@]} -eq 0 ]] && COMPREPLY=($(compgen -f -- "${cur}"))
  return 0
}
complete -o default -F _ferry_complete ferry
`)
	return b.String()
}

// fishCompletion lists every command and flag of app for fish.
func fishCompletion(app *cli.App) string {
	var b strings.Builder
	b.WriteString(`# ferry completion for fish: ferry completion fish > ~/.config/fish/completions/ferry.fish
complete -c ferry -e
function __ferry_files --argument-names pattern
    for f in (commandline -ct)*
        if test -d $f
            echo $f/
        else if string match -q -- $pattern $f
            echo $f
        end
    end
end
`)
	var names []string
	for _, c := range app.Commands {
		if !c.Hidden && c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	fmt.Fprintf(&b, "complete -c ferry -f -n __fish_use_subcommand -a %q\n", strings.Join(names, " "))
	fishFlags(&b, "", app.Flags)
	for _, c := range app.Commands {
		if c.Hidden || c.Name == "help" {
			continue
		}
		cond := "__fish_seen_subcommand_from " + c.Name
		for _, sub := range c.Subcommands {
			fmt.Fprintf(&b, "complete -c ferry -f -n %q -a %s -d %s\n", cond, sub.Name, fishQuote(sub.Usage))
		}
		fishFlags(&b, cond, c.Flags)
		for _, m := range metaArgs {
			if m == c.Name {
				fmt.Fprintf(&b, "complete -c ferry -n %q -f -a '(__ferry_files \"*_meta.yaml\")'\n", cond)
			}
		}
	}
	return b.String()
}

func fishFlags(b *strings.Builder, cond string, flags []cli.Flag) {
	for _, f := range flags {
		names := f.Names()
		line := "complete -c ferry"
		if cond != "" {
			line += fmt.Sprintf(" -n %q", cond)
		}
		for _, n := range names {
			if len(n) == 1 {
				line += " -s " + n
			} else {
				line += " -l " + n
			}
		}
		if _, isBool := f.(*cli.BoolFlag); !isBool {
			line += " -r"
			if v, ok := valueCompletions[names[0]]; ok && !strings.HasPrefix(v, "*") {
				line += " -f -a " + fishQuote(v)
			} else if ok {
				line += " -f -a '(__ferry_files \"" + v + "\")'"
			}
		}
		if df, ok := f.(cli.DocGenerationFlag); ok && df.GetUsage() != "" {
			line += " -d " + fishQuote(df.GetUsage())
		}
		b.WriteString(line + "\n")
	}
}

// spellings are the ways to write flag name (and its aliases) in any
// command, -x and --name.
func spellings(app *cli.App, name string) []string {
	seen := map[string]bool{"--" + name: true}
	out := []string{"--" + name}
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				if names := f.Names(); names[0] == name {
					for _, n := range names[1:] {
						if s := dashed(n); !seen[s] {
							seen[s] = true
							out = append(out, s)
						}
					}
				}
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return out
}

func fishQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
