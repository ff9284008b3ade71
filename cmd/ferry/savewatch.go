package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/meta"
)

// saveRound is one line of save --watch's --report.
type saveRound struct {
	Round int       `json:"round"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	saveJSON
	// Unchanged: no new blob and every image at its last digest; the
	// round's bundle was removed.
	Unchanged bool `json:"unchanged,omitempty"`
}

// saveWatch repeats save every interval until stopped: the first round as
// asked (full, or against --inc), every later one an increment against
// the meta file of the last round that wrote one. A round that finds
// nothing new leaves no bundle. An interrupt ends the round in progress
// (its parts are removed) and exits 0.
func (e *env) saveWatch(c *cli.Context, every time.Duration) error {
	if every < time.Second {
		return usagef("--watch must be at least 1s")
	}
	var report *os.File
	if file := c.String("report"); file != "" {
		var err error
		if report, err = os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return usageError{err}
		}
		defer report.Close()
	}
	jsonWanted := c.Bool("json")
	// each round is a plain save whose result object is read back
	if err := errors.Join(c.Set("watch", "0"), c.Set("json", "true"), c.Set("watch-round", "true")); err != nil {
		return err
	}
	out := e.stdout
	defer func() { e.stdout = out }()
	var last *meta.Meta
	for n := 1; ; n++ {
		r := saveRound{Round: n, Start: time.Now().UTC()}
		var buf bytes.Buffer
		e.stdout = &buf
		err := e.save(c)
		e.stdout = out
		var ue usageError
		if errors.As(err, &ue) {
			return err // the next round would fail the same way
		}
		if jerr := json.Unmarshal(buf.Bytes(), &r.saveJSON); jerr != nil && err == nil {
			err = jerr
		}
		if err != nil && r.Error == "" && len(r.Failures) == 0 {
			r.Error = err.Error()
		}
		if err == nil && r.Meta != "" {
			m, lerr := meta.Load(r.Meta)
			switch {
			case lerr != nil:
				r.Error = lerr.Error()
			case last != nil && unchanged(last, m):
				r.Unchanged = true
				removeBundle(r.Meta, m)
			default:
				last = m
				if err := c.Set("inc", r.Meta); err != nil {
					return err
				}
			}
		}
		r.End = time.Now().UTC()
		b, _ := json.Marshal(r)
		if report != nil {
			if _, werr := report.Write(append(b, '\n')); werr != nil {
				e.log.Warn("writing the report", "file", report.Name(), "err", werr)
			}
		}
		if jsonWanted {
			_, _ = out.Write(append(b, '\n'))
		}
		if err != nil {
			e.log.Warn("round failed", "round", n, "err", err)
		}
		e.log.Info("round done", "round", n, "meta", r.Meta, "blobs", r.Blobs, "unchanged", r.Unchanged, "took", r.End.Sub(r.Start).Round(time.Millisecond))
		select {
		case <-c.Context.Done():
			e.log.Info("stopped", "rounds", n)
			return nil
		case <-time.After(every):
		}
	}
}

// unchanged reports whether m (an increment on last) stores no blob and
// every image has the digest it had in last.
func unchanged(last, m *meta.Meta) bool {
	if len(m.Blobs) > 0 || len(m.Images) != len(last.Images) {
		return false
	}
	was := map[string]string{}
	for _, img := range last.Images {
		was[img.Source] = img.Digest.String()
	}
	for _, img := range m.Images {
		if was[img.Source] != img.Digest.String() {
			return false
		}
	}
	return true
}

// removeBundle deletes the parts and then the meta file of a bundle.
func removeBundle(metaPath string, m *meta.Meta) {
	dir := filepath.Dir(metaPath)
	for _, p := range m.Parts {
		_ = os.Remove(filepath.Join(dir, p.Name))
	}
	_ = os.Remove(metaPath)
}
