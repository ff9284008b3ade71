package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ferry-oss/ferry/notify"
)

// NotifyConfig is one notify entry of cfg.yaml: where each save, upload
// and sync (and each --watch round) reports its end. image-transmit's
// dingtalk entries become dingtalk ones.
type NotifyConfig struct {
	// Type is dingtalk, telegram or webhook.
	Type string `yaml:"type"`
	// URL is the endpoint's base URL (dingtalk and telegram: their public
	// API by default; a private deployment sets it); webhook: required.
	URL string `yaml:"url"`
	// Token: the DingTalk robot's access_token, the Telegram bot token;
	// ${VAR} is read from the environment. Never logged.
	Token string `yaml:"token"`
	// Secret signs DingTalk messages (its signed-robot scheme).
	Secret string `yaml:"secret"`
	// ChatID is the Telegram chat.
	ChatID string `yaml:"chatID"`
}

func (n NotifyConfig) target() notify.Target {
	url := n.URL
	if url == "" && n.Type == "dingtalk" {
		url = os.Getenv("FERRY_DINGTALK_URL") // a private deployment's, for cfg files without url (image-transmit's dingtalk)
	}
	token, _ := expandCredential(n.Token, os.LookupEnv)
	secret, _ := expandCredential(n.Secret, os.LookupEnv)
	return notify.Target{Type: n.Type, URL: url, Token: token, Secret: secret, ChatID: n.ChatID}
}

func (c *Config) validateNotify() error {
	for i, n := range c.Notify {
		if err := n.target().Validate(); err != nil {
			return fmt.Errorf("%w: notify[%d]: %v", errConfig, i, err)
		}
	}
	return nil
}

// summarize writes to w and keeps what was written for notifyEnd.
func (e *env) summarize(w io.Writer) io.Writer { return summaryWriter{w, e} }

type summaryWriter struct {
	w io.Writer
	e *env
}

func (s summaryWriter) Write(p []byte) (int, error) {
	s.e.summary = append(s.e.summary, strings.TrimSpace(string(p)))
	return s.w.Write(p)
}

// notifyEnd sends one message to every cfg notify target: the command,
// OK or FAILED, what it did and what failed. A notification that fails is
// logged (without token or secret) and never changes the exit.
func (e *env) notifyEnd(ctx context.Context, what string, err error) {
	lines, failed := e.summary, e.failed
	e.summary, e.failed = nil, nil
	if len(e.cfg.Notify) == 0 {
		return
	}
	status := "OK"
	switch {
	case errors.Is(err, context.Canceled):
		status = "INTERRUPTED"
	case err != nil:
		status = "FAILED"
	}
	for _, f := range failed {
		lines = append(lines, fmt.Sprintf("failed: %s: %v", f.Image, f.Err))
	}
	if err != nil && !errors.Is(err, errReported) && !errors.Is(err, context.Canceled) {
		lines = append(lines, "error: "+firstLine(err.Error()))
	}
	event := map[string]any{"command": what, "status": status, "failed": len(failed)}
	e.send(ctx, notify.Message{Title: fmt.Sprintf("ferry %s on %s: %s", what, hostname(), status), Text: bullets(lines), Event: event})
}

// notifySync reports one sync (or --watch round).
func (e *env) notifySync(ctx context.Context, rep *syncReport, err error) {
	if rep != nil {
		e.summary = append(e.summary, fmt.Sprintf("round %d: %d copies (%d up to date), %d failed, %d blobs pushed (%s)", rep.Round, rep.Copies, rep.UpToDate, rep.Failed, rep.Pushed, formatSize(rep.BytesPushed)))
		for _, f := range rep.Failures {
			e.summary = append(e.summary, "failed: "+f.Image+": "+f.Error)
		}
	}
	e.notifyEnd(ctx, "sync", err)
}

func (e *env) send(ctx context.Context, m notify.Message) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second}
	for _, n := range e.cfg.Notify {
		t := n.target()
		if err := notify.Send(ctx, client, t, m, time.Now()); err != nil {
			e.log.Warn("notification not sent", "to", t.Name(), "err", err)
			continue
		}
		e.log.Debug("notification sent", "to", t.Name())
	}
}

func bullets(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "?"
	}
	return h
}
