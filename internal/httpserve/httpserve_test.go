package httpserve

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRun: a request running when the context ends finishes within the
// grace period; one that outlives it is cut off and said so.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		grace   time.Duration
		wantErr string
	}{
		{"finishes in time", 30 * time.Second, ""},
		{"cut off", time.Millisecond, "were cut off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			started, release := make(chan struct{}), make(chan struct{})
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				<-release
			})}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Run(ctx, srv, l, tc.grace) }()
			go func() {
				if resp, err := http.Get("http://" + l.Addr().String()); err == nil {
					resp.Body.Close()
				}
			}()
			<-started
			cancel()
			if tc.wantErr == "" {
				close(release)
			}
			err = <-done
			if tc.wantErr != "" {
				close(release)
			}
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Run: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
