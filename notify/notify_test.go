package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-oss/ferry/notify"
)

// server is a fake DingTalk/Telegram/webhook endpoint that checks what a
// real one checks and records the bodies.
type server struct {
	*httptest.Server
	bodies []map[string]any
}

func newServer(t *testing.T, secret string) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", 400)
			return
		}
		switch {
		case r.URL.Path == "/robot/send":
			q := r.URL.Query()
			ts, _ := strconv.ParseInt(q.Get("timestamp"), 10, 64)
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(q.Get("timestamp") + "\n" + secret))
			want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
			if q.Get("access_token") != "tok" || q.Get("sign") != want || time.Since(time.UnixMilli(ts)) > time.Hour {
				_, _ = w.Write([]byte(`{"errcode":310000,"errmsg":"sign not match"}`))
				return
			}
			_, _ = w.Write([]byte(`{"errcode":0,"errmsg":"ok"}`))
		case r.URL.Path == "/botTOKEN/sendMessage":
			_, _ = w.Write([]byte(`{"ok":true}`))
		case r.URL.Path == "/hook":
			w.WriteHeader(204)
		default:
			http.NotFound(w, r)
			return
		}
		s.bodies = append(s.bodies, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestSend(t *testing.T) {
	s := newServer(t, "SEC")
	m := notify.Message{Title: "ferry save: OK", Text: "- 3 images\n- meta: /media/usb/x_meta.yaml", Event: map[string]any{"images": 3}}
	for _, tg := range []notify.Target{
		{Type: "dingtalk", URL: s.URL, Token: "tok", Secret: "SEC"},
		{Type: "telegram", URL: s.URL, Token: "TOKEN", ChatID: "42"},
		{Type: "webhook", URL: s.URL + "/hook"},
	} {
		if err := tg.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := notify.Send(context.Background(), s.Client(), tg, m, time.Now()); err != nil {
			t.Fatalf("%s: %v", tg.Type, err)
		}
	}
	if len(s.bodies) != 3 {
		t.Fatalf("%d bodies", len(s.bodies))
	}
	md := s.bodies[0]["markdown"].(map[string]any)
	if s.bodies[0]["msgtype"] != "markdown" || md["title"] != m.Title || !strings.Contains(md["text"].(string), "/media/usb/x_meta.yaml") {
		t.Errorf("dingtalk body %v", s.bodies[0])
	}
	if s.bodies[1]["chat_id"] != "42" || !strings.Contains(s.bodies[1]["text"].(string), "3 images") {
		t.Errorf("telegram body %v", s.bodies[1])
	}
	if s.bodies[2]["title"] != m.Title || s.bodies[2]["event"].(map[string]any)["images"] != 3.0 {
		t.Errorf("webhook body %v", s.bodies[2])
	}
}

func TestFailuresNameNoSecret(t *testing.T) {
	s := newServer(t, "SEC")
	for _, tg := range []notify.Target{
		{Type: "dingtalk", URL: s.URL, Token: "tok", Secret: "WRONG-SECRET"},   // the robot refuses the signature
		{Type: "telegram", URL: s.URL + "/x", Token: "TOKEN-123", ChatID: "1"}, // 404
		{Type: "dingtalk", URL: "http://127.0.0.1:1", Token: "TOKEN-456"},      // nothing listens
		{Type: "webhook", URL: "http://127.0.0.1:1/hook?token=TOKEN-789"},      // nothing listens
	} {
		err := notify.Send(context.Background(), s.Client(), tg, notify.Message{Title: "t"}, time.Now())
		if !errors.Is(err, notify.ErrNotify) {
			t.Fatalf("%s: %v, want ErrNotify", tg.Name(), err)
		}
		for _, secret := range []string{"WRONG-SECRET", "TOKEN-123", "TOKEN-456", "TOKEN-789", "tok&"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows a secret: %v", err)
			}
		}
	}
}

func TestDingTalkSign(t *testing.T) {
	// the example of DingTalk's documentation, computed with openssl:
	// printf '1577262236757\nSEC123' | openssl dgst -sha256 -hmac SEC123 -binary | base64
	if got := notify.DingTalkSign("1577262236757", "SEC123"); got != "Z/IOagKYTkrnYtxAsTKneRe0bzmlPCH3ZDJPTD2h9QA=" {
		t.Fatalf("sign %q", got)
	}
}
