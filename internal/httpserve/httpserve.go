// Package httpserve runs an http.Server until its context ends, then shuts
// it down gracefully: the one shutdown sequence of ferry's servers (the
// read-only registry of ferry serve, the console of ferry ui).
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Run serves srv on l until ctx ends (or serving fails), then stops
// accepting, lets running requests finish for up to grace, and closes
// what is left.
func Run(ctx context.Context, srv *http.Server, l net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: requests still running after %s were cut off", grace)
	}
	return err
}
