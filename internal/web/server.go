package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves one listener with kura's timeouts and a graceful shutdown:
// when its context ends it first calls OnShutdown (readiness turns to 503),
// keeps serving for ShutdownDelay so load balancers notice, then stops
// accepting and waits up to Drain for in-flight requests.
type Server struct {
	Handler http.Handler
	Logger  *slog.Logger
	// TLS, when set, serves HTTPS (HTTP/2 included) with this configuration,
	// which must hold a certificate or GetCertificate.
	TLS *tls.Config
	// Drain bounds how long shutdown waits for in-flight requests; zero
	// means 10 seconds.
	Drain time.Duration
	// ShutdownDelay is how long the server keeps serving, not ready, after
	// shutdown begins. Zero stops accepting at once.
	ShutdownDelay time.Duration
	// OnShutdown, when set, is called once as shutdown begins, before the
	// listener closes.
	OnShutdown func()
}

// Serve serves l until ctx is done, then shuts down gracefully. It returns
// nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	drain := s.Drain
	if drain == 0 {
		drain = 10 * time.Second
	}
	srv := &http.Server{
		Handler:           s.Handler,
		TLSConfig:         s.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if s.TLS != nil {
			errc <- srv.ServeTLS(l, "", "")
			return
		}
		errc <- srv.Serve(l)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if s.OnShutdown != nil {
		s.OnShutdown()
	}
	log.Info("shutting down", "addr", l.Addr().String(), "delay", s.ShutdownDelay.String(), "drain", drain.String())
	if s.ShutdownDelay > 0 {
		t := time.NewTimer(s.ShutdownDelay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return err
		}
	}
	// A fresh context: ctx is already done.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown of %s: in-flight requests still running after %s: %w", l.Addr(), drain, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
