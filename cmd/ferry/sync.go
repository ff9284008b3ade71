package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/foreign/imagesyncer"
	"github.com/ferry-oss/ferry/internal/safe"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

func syncCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "sync",
		Usage:     "copy images straight from their registries into one or more target registries",
		ArgsUsage: "[IMAGE ...]",
		Description: `No bundle and no disk: each blob a target lacks is read once from the source
and streamed into every target that lacks it (digest-checked; a blob a
target has is skipped, one it has in another repository is mounted).
Manifests follow, children first, tags last. An image a target already has
under its tag is left alone, so a second run pushes nothing.

Examples:
  ferry sync localhost:5000/team/app:1 --target reg-a.local:5000/mirror --target reg-b.local
  ferry sync --list images.txt --platform linux/amd64 --target prod
  ferry sync 'src.local/team/app:>=1.4 <2.0' --latest 3 --target reg-a.local
  ferry sync --list images.txt --target prod --watch 10m --report sync.jsonl
  ferry sync --images images.yaml --auth auth.yaml         # image-syncer's files`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "target", Aliases: []string{"t", "dst"}, Usage: "REGISTRY[/NAMESPACE] or cfg name (repeatable; cfg targets)"},
			&cli.StringFlag{Name: "list", Aliases: []string{"l", "lst"}, Usage: "image list file, - for stdin"},
			&cli.StringFlag{Name: "src", Usage: "registry (or cfg name) that list entries are paths on"},
			&cli.StringSliceFlag{Name: "img", Usage: "an image, like an IMAGE argument (repeatable)"},
			&cli.StringSliceFlag{Name: "platform", Aliases: []string{"p"}, Usage: "keep only these platforms of multi-platform images (as save)"},
			&cli.IntFlag{Name: "latest", DefaultText: "all", Usage: "tag selections keep the N highest tags (semver order)"},
			shardFlag(),
			&cli.BoolFlag{Name: "referrers", Value: true, Usage: "also copy signatures, SBOMs and other referrers of every image (cfg.yaml: referrers)"},
			&cli.StringSliceFlag{Name: "artifact-type", Usage: "keep only referrers of this artifact type, or a cosign tag suffix (.sig, .att, .sbom); repeatable (cfg.yaml: artifactTypes)"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 4, Usage: "concurrent transfers (cfg.yaml: jobs)"},
			&cli.IntFlag{Name: "retries", Value: 3, Usage: "retries of a transfer that failed for a transient reason (cfg.yaml: retries)"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "a source that sends nothing this long is read again from where it stopped; a target that reads nothing this long drops out; 0: never (cfg.yaml: timeout)"},
			&cli.DurationFlag{Name: "watch", DefaultText: "off", Usage: "repeat every interval (e.g. 10m) until stopped; SIGTERM ends after the blobs in flight"},
			&cli.StringFlag{Name: "report", Usage: "append one JSON object per round to this file"},
			jsonFlag,
			&cli.StringFlag{Name: "images", Usage: "image-syncer images file (YAML or JSON)"},
			&cli.StringFlag{Name: "auth", Usage: "image-syncer auth file (YAML or JSON)"},
			&cli.BoolFlag{Name: "insecure", Usage: "skip TLS certificate checks for registries not in cfg.yaml"},
			&cli.StringFlag{Name: "ca-file", Usage: "CA certificate (PEM) for registries not in cfg.yaml"},
		},
		Action: func(c *cli.Context) error { return e.sync(c) },
	}
}

// syncReport is one round's result: the --report line and the --json output.
type syncReport struct {
	Round       int                     `json:"round"`
	Start       time.Time               `json:"start"`
	End         time.Time               `json:"end"`
	Images      int                     `json:"images"`   // source images resolved
	Copies      int                     `json:"copies"`   // image copies complete at their target
	UpToDate    int                     `json:"upToDate"` // of those, already there
	Failed      int                     `json:"failed"`
	Manifests   int                     `json:"manifestsPushed"`
	Pushed      int                     `json:"blobsPushed"`
	Skipped     int                     `json:"blobsSkipped"`
	Mounted     int                     `json:"blobsMounted"`
	BytesRead   int64                   `json:"bytesRead"`
	BytesPushed int64                   `json:"bytesPushed"`
	Targets     []transfer.TargetResult `json:"targets"`
	Failures    []jsonFailure           `json:"failures"`
	Error       string                  `json:"error,omitempty"`
	Stopped     bool                    `json:"stopped,omitempty"`
}

type jsonFailure struct {
	Image string `json:"image"`
	Error string `json:"error"`
}

func (e *env) sync(c *cli.Context) error {
	s, err := e.syncFlags(c)
	if err != nil {
		return err
	}
	if err := s.addTargets(); err != nil {
		return err
	}
	if err := s.addImages(); err != nil {
		return err
	}
	reg, err := s.newClient()
	if err != nil {
		return err
	}
	if err := e.checkSync(c.Context, reg, s.hosts); err != nil { // every source and target, before any work
		return err
	}
	if file := c.String("report"); file != "" {
		s.report, err = os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return usageError{err}
		}
		defer s.report.Close()
	}
	names := make([]string, len(s.targets))
	for i, t := range s.targets {
		names[i] = t.Name
	}
	e.log.Info("syncing", "images", len(s.images), "targets", strings.Join(names, ","), "jobs", s.jobs)
	if s.watch == 0 {
		rep, err := s.round(c.Context, nil, 1)
		return e.syncDone(c, rep, err)
	}
	return s.watchRounds()
}

// syncRun is one `ferry sync`: its settings, targets and images.
type syncRun struct {
	e             *env
	c             *cli.Context
	jobs, retries int
	plats         []platform.Platform
	watch         time.Duration
	targets       []transfer.SyncTarget
	hosts         []string // every registry the client talks to
	images        []transfer.SyncImage
	report        *os.File // --report, or nil
}

// syncFlags reads and checks sync's flags.
func (e *env) syncFlags(c *cli.Context) (*syncRun, error) {
	s := &syncRun{e: e, c: c, jobs: flagOr(c, "jobs", e.cfg.Jobs)}
	if s.jobs < 1 || s.jobs > 64 {
		return nil, usagef("--jobs must be 1 to 64")
	}
	setMemoryLimit(s.jobs)
	s.retries = e.retries(c)
	var err error
	if s.plats, _, err = parsePlatforms(orSlice(c.StringSlice("platform"), e.cfg.Platforms)); err != nil {
		return nil, err
	}
	if c.Int("latest") < 0 {
		return nil, usagef("--latest must be 0 or more")
	}
	s.watch = c.Duration("watch")
	if s.watch < 0 || (s.watch > 0 && s.watch < time.Second) {
		return nil, usagef("--watch must be at least 1s")
	}
	return s, nil
}

// addTargets adds the targets: --target, cfg targets, cfg target.
func (s *syncRun) addTargets() error {
	cfg := s.e.cfg
	for _, t := range orSlice(s.c.StringSlice("target"), orSlice(cfg.Targets, nonEmpty(cfg.Target))) {
		if err := s.addTarget(t); err != nil {
			return err
		}
	}
	return nil
}

// addTarget adds target t (REGISTRY[/NAMESPACE] or a cfg name), once.
func (s *syncRun) addTarget(t string) error {
	host, ns, _, isDocker, err := s.e.parseTarget(t)
	if err != nil {
		return err
	}
	if isDocker {
		return usagef("sync targets are registries; load into Docker or containerd with save and upload")
	}
	name := strings.TrimSuffix(host.Registry+"/"+ns, "/")
	for _, t := range s.targets {
		if t.Name == name {
			return nil // the same target twice
		}
	}
	s.targets = append(s.targets, transfer.SyncTarget{Name: name, Repo: s.e.syncRepo(t, host, ns)})
	s.hosts = append(s.hosts, host.Registry)
	return nil
}

// addImages adds the images: image-syncer's files, or args, --list and
// cfg.yaml.
func (s *syncRun) addImages() error {
	c := s.c
	if file := c.String("images"); file != "" {
		var err error
		s.images, err = s.e.imageSyncerImages(file, c.String("auth"), &s.targets, &s.hosts)
		if err != nil {
			return err
		}
	} else {
		if c.String("auth") != "" {
			return usagef("--auth goes with --images (image-syncer's files); credentials otherwise come from cfg.yaml")
		}
		specs, err := s.e.imageList(c)
		if err != nil {
			return err
		}
		for _, sp := range specs {
			s.images = append(s.images, transfer.SyncImage{Spec: sp})
		}
	}
	if len(s.images) == 0 {
		return usagef("no images: give IMAGE arguments, --list, --images, or images/list in cfg.yaml")
	}
	if len(s.targets) == 0 {
		return usagef("sync needs --target (repeatable), or targets in cfg.yaml")
	}
	for _, im := range s.images {
		s.hosts = append(s.hosts, im.Spec.Source.Registry)
	}
	return nil
}

// newClient makes the registry client of a round and the targets' sink: a
// client per round, so that one round's failures do not leave the next
// round waiting out the client's backoff from a host.
func (s *syncRun) newClient() (*registry.Registry, error) {
	reg, err := s.e.registryFor(s.hosts, s.c.Bool("insecure"), s.c.String("ca-file"), s.jobs, s.retries)
	if err != nil {
		return nil, usageError{err}
	}
	for i := range s.targets {
		s.targets[i].Sink = reg
	}
	return reg, nil
}

// round runs round n and returns its report, also appended to --report.
func (s *syncRun) round(ctx context.Context, stop <-chan struct{}, n int) (*syncReport, error) {
	e, c := s.e, s.c
	rep := &syncReport{Round: n, Start: time.Now().UTC()}
	reg, err := s.newClient()
	if err != nil {
		return rep, err
	}
	res, failed, err := transfer.SyncRound(ctx, reg, s.targets, s.images, selection.ExpandOptions{Latest: c.Int("latest"), Jobs: s.jobs}, transfer.SyncOptions{
		Platforms: s.plats, Jobs: s.jobs, Retries: s.retries, Stop: stop, Log: e.log,
		Referrers: e.referrers(c), ArtifactTypes: orSlice(c.StringSlice("artifact-type"), e.cfg.ArtifactTypes),
		IdleTimeout: e.timeout(c),
	}, func() (oci.Progress, func()) {
		p := e.progress()
		return p, p.Stop
	})
	err = rep.fill(res, failed, err)
	rep.End = time.Now().UTC()
	if s.report != nil {
		b, _ := json.Marshal(rep)
		if _, werr := s.report.Write(append(b, '\n')); werr != nil {
			e.log.Warn("writing the report", "file", s.report.Name(), "err", werr)
		}
	}
	e.notifySync(ctx, rep, err)
	return rep, err
}

// fill puts a round's result into the report and returns the round's
// error: a *FailedError of the failed copies, or what ended the round
// (not when Stop did).
func (rep *syncReport) fill(res *transfer.SyncResult, failed []transfer.ImageError, err error) error {
	if res != nil {
		tot := res.Total()
		rep.Images, rep.Copies, rep.UpToDate, rep.Failed = res.Images, tot.Images, tot.UpToDate, tot.Failed
		rep.Manifests, rep.Pushed, rep.Skipped, rep.Mounted = tot.Manifests, tot.BlobsPushed, tot.BlobsSkipped, tot.BlobsMounted
		rep.BytesRead, rep.BytesPushed, rep.Targets = res.BytesRead, tot.BytesPushed, res.Targets
	}
	rep.Failed = len(failed)
	rep.Failures = []jsonFailure{}
	for _, f := range failed {
		rep.Failures = append(rep.Failures, jsonFailure{Image: f.Image, Error: f.Err.Error()})
	}
	var fe *transfer.FailedError
	switch {
	case errors.Is(err, transfer.ErrStopped):
		rep.Stopped = true
		err = nil
	case errors.As(err, &fe):
		err = nil // listed in Failures
	case err != nil:
		rep.Error = err.Error()
	}
	if err == nil && len(failed) > 0 {
		err = &transfer.FailedError{Images: failed}
	}
	return err
}

// watchRounds runs a round every --watch until stopped: an interrupt lets
// the blobs in flight finish (up to a minute), then ends with exit 0.
func (s *syncRun) watchRounds() error {
	e, c := s.e, s.c
	n, err := transfer.Watch(c.Context, s.watch, time.Minute, func(ctx context.Context, stop <-chan struct{}, n int) error {
		rep, err := s.round(ctx, stop, n)
		var fe *transfer.FailedError
		if errors.Is(err, selection.ErrBadList) && !errors.As(err, &fe) {
			return usageError{err} // the next round would fail the same way
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			e.log.Warn("round failed", "round", n, "err", err)
		}
		e.log.Info("round done", "round", n, "copies", rep.Copies, "upToDate", rep.UpToDate, "failed", rep.Failed,
			"blobsPushed", rep.Pushed, "bytesPushed", rep.BytesPushed, "took", rep.End.Sub(rep.Start).Round(time.Millisecond))
		if c.Bool("json") {
			_ = json.NewEncoder(e.stdout).Encode(rep)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.log.Info("stopped", "rounds", n)
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// syncDone prints a one-shot sync's summary (or JSON) and picks the exit.
func (e *env) syncDone(c *cli.Context, rep *syncReport, err error) error {
	out := e.stdout
	if c.Bool("json") {
		_ = json.NewEncoder(e.stdout).Encode(rep)
		out = e.stderr
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var fe *transfer.FailedError
	if err != nil && !errors.As(err, &fe) {
		if errors.Is(err, selection.ErrBadList) {
			return usageError{err}
		}
		return err
	}
	for _, t := range rep.Targets {
		tr().Fprintf(out, "%s: %d image(s) (%d already there), %d manifest(s), %d blob(s) pushed (%s), %d skipped, %d mounted, %d failed\n",
			t.Name, t.Images, t.UpToDate, t.Manifests, t.BlobsPushed, formatSize(t.BytesPushed), t.BlobsSkipped, t.BlobsMounted, t.Failed)
	}
	tr().Fprintf(out, "synced %d of %d image copies to %d target(s) (%d already there): read %s from the source, pushed %s in %s\n",
		rep.Copies, rep.Copies+rep.Failed, len(rep.Targets), rep.UpToDate, formatSize(rep.BytesRead), formatSize(rep.BytesPushed), rep.End.Sub(rep.Start).Round(time.Millisecond))
	if fe != nil {
		tr().Fprintf(e.stderr, "\nFAILED: %d image copy(ies):\n", len(fe.Images))
		for _, f := range fe.Images {
			fmt.Fprintf(e.stderr, "  %s\n    %s\n", f.Image, safe.Error(f.Err))
		}
		return cli.Exit("sync failed", exitFailure)
	}
	return nil
}

// imageSyncerImages reads image-syncer's images (and auth) files: each
// rule goes to the targets its destinations name; an empty destination
// goes to every --target.
func (e *env) imageSyncerImages(imagesFile, authFile string, targets *[]transfer.SyncTarget, hosts *[]string) ([]transfer.SyncImage, error) {
	if authFile != "" {
		auth, err := parseFile(authFile, imagesyncer.ParseAuth)
		if err != nil {
			return nil, err
		}
		hs, err := imagesyncer.Hosts(auth)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", authFile, err)}
		}
		for _, h := range hs {
			if _, ok := e.cfg.Lookup(h.Registry); ok {
				continue // cfg.yaml wins
			}
			rc := RegistryConfig{Registry: h.Registry, User: h.Username, Pass: h.Password}
			if h.Insecure {
				rc.TLS = registry.TLSDisabled // image-syncer: insecure means plain HTTP
			}
			e.cfg.Registries = append(e.cfg.Registries, rc)
		}
	}
	rules, err := parseFile(imagesFile, imagesyncer.ParseImages)
	if err != nil {
		return nil, err
	}
	defaults := make([]int, len(*targets)) // an empty destination: every --target
	for t := range defaults {
		defaults[t] = t
	}
	byHost := map[string]int{}
	var out []transfer.SyncImage
	for _, r := range rules {
		for _, d := range r.Destinations {
			if d == "" && len(defaults) == 0 {
				return nil, usagef("%s: line %d: %s has no destination: give --target", imagesFile, r.Line, r.Source)
			}
			// the default's host is a placeholder: each --target maps it
			rt, err := imagesyncer.RouteOf(r.Source, d, "default.invalid")
			if err != nil {
				return nil, usageError{fmt.Errorf("%s: line %d: %w", imagesFile, r.Line, err)}
			}
			spec, err := selection.ParseImage(rt.Line, "")
			if err != nil {
				return nil, usageError{fmt.Errorf("%s: line %d: %w", imagesFile, r.Line, err)}
			}
			if d == "" {
				out = append(out, transfer.SyncImage{Spec: spec, Targets: defaults})
				continue
			}
			t, ok := byHost[rt.Host]
			if !ok {
				host, err := ref.NewHost(rt.Host)
				if err != nil {
					return nil, usagef("%s: line %d: destination host %q: %v", imagesFile, r.Line, rt.Host, err)
				}
				t = len(*targets)
				byHost[rt.Host] = t
				*targets = append(*targets, transfer.SyncTarget{Name: rt.Host, Repo: transfer.RegistryTarget(host, "", nil)})
				*hosts = append(*hosts, rt.Host)
			}
			out = append(out, transfer.SyncImage{Spec: spec, Targets: []int{t}})
		}
	}
	return out, nil
}

// parseFile reads and parses a configuration file; both failures are
// usage errors naming the file.
func parseFile[T any](file string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := os.ReadFile(file)
	if err != nil {
		return zero, usageError{err}
	}
	v, err := parse(b)
	if err != nil {
		return zero, usageError{fmt.Errorf("%s: %w", file, err)}
	}
	return v, nil
}

// timeout is --timeout, else cfg.yaml timeout (validated with the config).
func (e *env) timeout(c *cli.Context) time.Duration {
	if !c.IsSet("timeout") && e.cfg.Timeout != "" {
		d, _ := time.ParseDuration(e.cfg.Timeout)
		return d
	}
	return c.Duration("timeout")
}

// referrers is --referrers, else cfg.yaml referrers.
func (e *env) referrers(c *cli.Context) bool {
	if !c.IsSet("referrers") && e.cfg.Referrers != nil {
		return *e.cfg.Referrers
	}
	return c.Bool("referrers")
}
