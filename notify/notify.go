// Package notify sends one message at the end of a transfer to a DingTalk
// robot (its signed scheme), a Telegram bot or a plain JSON webhook. A
// failed notification is the caller's to log; tokens and secrets never
// appear in errors.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotify is any failed notification.
var ErrNotify = errors.New("notification failed")

// Message is what a transfer reports.
type Message struct {
	Title string `json:"title"` // "ferry save: OK"
	Text  string `json:"text"`  // markdown lines: what moved, what failed, the meta file
	// Event is the machine-readable summary (a webhook's body carries it).
	Event map[string]any `json:"event,omitempty"`
}

// Target is one endpoint.
type Target struct {
	// Type is dingtalk, telegram or webhook.
	Type string
	// URL is the base URL: DingTalk's and Telegram's API by default (a
	// private deployment or a test sets it); the webhook's URL.
	URL string
	// Token is the DingTalk access_token or the Telegram bot token.
	Token string
	// Secret signs DingTalk messages (its signed-robot scheme).
	Secret string
	// ChatID is the Telegram chat.
	ChatID string
}

// Default base URLs.
const (
	DingTalkURL = "https://oapi.dingtalk.com"
	TelegramURL = "https://api.telegram.org"
)

// Validate checks a target before any transfer starts.
func (t Target) Validate() error {
	switch t.Type {
	case "dingtalk":
		if t.Token == "" {
			return errors.New("dingtalk: token is required")
		}
	case "telegram":
		if t.Token == "" || t.ChatID == "" {
			return errors.New("telegram: token and chatID are required")
		}
	case "webhook":
		if u, err := url.Parse(t.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("webhook: url must be an http:// or https:// URL")
		}
	default:
		return fmt.Errorf("type %q (want dingtalk, telegram or webhook)", t.Type)
	}
	return nil
}

// Name names the target in logs: its type and host, no token.
func (t Target) Name() string {
	base := t.URL
	if base == "" {
		base = map[string]string{"dingtalk": DingTalkURL, "telegram": TelegramURL}[t.Type]
	}
	if u, err := url.Parse(base); err == nil {
		return t.Type + " " + u.Host
	}
	return t.Type
}

// Send posts m to t, within ctx (callers bound it: a notification must not
// hold up the end of a transfer for long).
func Send(ctx context.Context, client *http.Client, t Target, m Message, now time.Time) error {
	u, body, err := t.request(m, now)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNotify, t.Name(), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %s: bad URL", ErrNotify, t.Name())
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, token included
		}
		return fmt.Errorf("%w: %s: %v", ErrNotify, t.Name(), err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: %s: HTTP %d", ErrNotify, t.Name(), resp.StatusCode)
	}
	return t.checkReply(reply)
}

// request builds the URL and JSON body of t's API.
func (t Target) request(m Message, now time.Time) (string, []byte, error) {
	switch t.Type {
	case "dingtalk":
		q := url.Values{"access_token": {t.Token}}
		if t.Secret != "" {
			ts := strconv.FormatInt(now.UnixMilli(), 10)
			q.Set("timestamp", ts)
			q.Set("sign", DingTalkSign(ts, t.Secret))
		}
		body, err := json.Marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": m.Title, "text": "### " + m.Title + "\n" + m.Text}})
		return strings.TrimRight(orDefault(t.URL, DingTalkURL), "/") + "/robot/send?" + q.Encode(), body, err
	case "telegram":
		body, err := json.Marshal(map[string]any{"chat_id": t.ChatID, "text": m.Title + "\n" + m.Text, "disable_web_page_preview": true})
		return strings.TrimRight(orDefault(t.URL, TelegramURL), "/") + "/bot" + t.Token + "/sendMessage", body, err
	case "webhook":
		body, err := json.Marshal(m)
		return t.URL, body, err
	}
	return "", nil, fmt.Errorf("type %q", t.Type)
}

// checkReply reads the API's own verdict: DingTalk answers errcode 0,
// Telegram ok: true.
func (t Target) checkReply(reply []byte) error {
	switch t.Type {
	case "dingtalk":
		var r struct {
			ErrCode int    `json:"errcode"`
			ErrMsg  string `json:"errmsg"`
		}
		if json.Unmarshal(reply, &r) != nil || r.ErrCode != 0 {
			return fmt.Errorf("%w: %s: errcode %d: %.200s", ErrNotify, t.Name(), r.ErrCode, r.ErrMsg)
		}
	case "telegram":
		var r struct {
			OK          bool   `json:"ok"`
			Description string `json:"description"`
		}
		if json.Unmarshal(reply, &r) != nil || !r.OK {
			return fmt.Errorf("%w: %s: %.200s", ErrNotify, t.Name(), r.Description)
		}
	}
	return nil
}

// DingTalkSign is DingTalk's signature of a signed robot's request:
// base64(HMAC-SHA256(key: secret, "timestamp\nsecret")).
func DingTalkSign(timestamp, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "\n" + secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
