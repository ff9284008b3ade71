package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/regclient/regclient/types/ref"
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/foreign/imagesyncer"
	"github.com/ferry-oss/ferry/internal/safe"
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
	cfg := e.cfg
	jobs := flagOr(c, "jobs", cfg.Jobs)
	if jobs < 1 || jobs > 64 {
		return usagef("--jobs must be 1 to 64")
	}
	setMemoryLimit(jobs)
	retries := e.retries(c)
	plats, _, err := parsePlatforms(orSlice(c.StringSlice("platform"), cfg.Platforms))
	if err != nil {
		return err
	}
	if c.Int("latest") < 0 {
		return usagef("--latest must be 0 or more")
	}
	watch := c.Duration("watch")
	if watch < 0 || (watch > 0 && watch < time.Second) {
		return usagef("--watch must be at least 1s")
	}

	// targets: --target, cfg targets, cfg target
	var targets []transfer.SyncTarget
	var hosts []string
	addTarget := func(s string) error {
		host, ns, _, isDocker, err := e.parseTarget(s)
		if err != nil {
			return err
		}
		if isDocker {
			return usagef("sync targets are registries; load into Docker with save and upload")
		}
		name := strings.TrimSuffix(host.Registry+"/"+ns, "/")
		for _, t := range targets {
			if t.Name == name {
				return nil // the same target twice
			}
		}
		targets = append(targets, transfer.SyncTarget{Name: name, Repo: transfer.RegistryTarget(host, ns, nil)})
		hosts = append(hosts, host.Registry)
		return nil
	}
	for _, s := range orSlice(c.StringSlice("target"), orSlice(cfg.Targets, nonEmpty(cfg.Target))) {
		if err := addTarget(s); err != nil {
			return err
		}
	}

	// images: image-syncer's files, or args, --list and cfg.yaml
	var images []transfer.SyncImage
	if file := c.String("images"); file != "" {
		images, err = e.imageSyncerImages(file, c.String("auth"), &targets, &hosts)
		if err != nil {
			return err
		}
	} else {
		if c.String("auth") != "" {
			return usagef("--auth goes with --images (image-syncer's files); credentials otherwise come from cfg.yaml")
		}
		specs, err := e.imageList(c)
		if err != nil {
			return err
		}
		for _, s := range specs {
			images = append(images, transfer.SyncImage{Spec: s})
		}
	}
	if len(images) == 0 {
		return usagef("no images: give IMAGE arguments, --list, --images, or images/list in cfg.yaml")
	}
	if len(targets) == 0 {
		return usagef("sync needs --target (repeatable), or targets in cfg.yaml")
	}
	for _, im := range images {
		hosts = append(hosts, im.Spec.Source.Registry)
	}
	// a client per round: one round's failures must not leave the next
	// round waiting out the client's backoff from a host
	newClient := func() (*registry.Registry, error) {
		reg, err := e.registryFor(hosts, c.Bool("insecure"), c.String("ca-file"), jobs, retries)
		if err != nil {
			return nil, usageError{err}
		}
		for i := range targets {
			targets[i].Sink = reg
		}
		return reg, nil
	}
	if _, err := newClient(); err != nil {
		return err
	}
	var report *os.File
	if file := c.String("report"); file != "" {
		report, err = os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return usageError{err}
		}
		defer report.Close()
	}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	e.log.Info("syncing", "images", len(images), "targets", strings.Join(names, ","), "jobs", jobs)

	runRound := func(ctx context.Context, stop <-chan struct{}, n int) (*syncReport, error) {
		rep := &syncReport{Round: n, Start: time.Now().UTC()}
		reg, err := newClient()
		if err != nil {
			return rep, err
		}
		expanded, failed := transfer.ExpandSyncImages(ctx, reg, images, selection.ExpandOptions{Latest: c.Int("latest"), Jobs: jobs})
		var res *transfer.SyncResult
		if len(expanded) > 0 {
			p := e.progress()
			res, err = transfer.Sync(ctx, reg, targets, expanded, transfer.SyncOptions{
				Platforms: plats, Jobs: jobs, Retries: retries, Stop: stop, Log: e.log, Progress: p,
				Referrers: e.referrers(c), ArtifactTypes: orSlice(c.StringSlice("artifact-type"), cfg.ArtifactTypes),
				IdleTimeout: e.timeout(c),
			})
			p.Stop()
		}
		if res != nil {
			tot := res.Total()
			rep.Images, rep.Copies, rep.UpToDate, rep.Failed = res.Images, tot.Images, tot.UpToDate, tot.Failed
			rep.Manifests, rep.Pushed, rep.Skipped, rep.Mounted = tot.Manifests, tot.BlobsPushed, tot.BlobsSkipped, tot.BlobsMounted
			rep.BytesRead, rep.BytesPushed, rep.Targets = res.BytesRead, tot.BytesPushed, res.Targets
			failed = append(failed, res.Failed...)
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
		rep.End = time.Now().UTC()
		if report != nil {
			b, _ := json.Marshal(rep)
			if _, werr := report.Write(append(b, '\n')); werr != nil {
				e.log.Warn("writing the report", "file", report.Name(), "err", werr)
			}
		}
		return rep, err
	}

	if watch == 0 {
		rep, err := runRound(c.Context, nil, 1)
		return e.syncDone(c, rep, err)
	}
	// watch: an interrupt lets the blobs in flight finish (up to a minute),
	// then ends with exit 0
	hard, cancel := context.WithCancel(context.WithoutCancel(c.Context))
	defer cancel()
	go func() {
		select {
		case <-c.Context.Done():
			select {
			case <-time.After(time.Minute):
				cancel()
			case <-hard.Done():
			}
		case <-hard.Done():
		}
	}()
	for n := 1; ; n++ {
		rep, err := runRound(hard, c.Context.Done(), n)
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
		select {
		case <-c.Context.Done():
			e.log.Info("stopped", "rounds", n)
			return nil
		case <-time.After(watch):
		}
	}
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
