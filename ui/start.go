package ui

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
)

type verifyRequest struct {
	Bundle string `json:"bundle"`
}

func (s *Server) startVerify(w http.ResponseWriter, r *http.Request) {
	var req verifyRequest
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "bad-request", err)
		return
	}
	s.launch(w, "verify", req, "")
}

func (s *Server) startUpload(w http.ResponseWriter, r *http.Request) {
	var req UploadRequest
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "bad-request", err)
		return
	}
	s.launch(w, "upload", req, "")
}

func (s *Server) startSave(w http.ResponseWriter, r *http.Request) {
	var req SaveRequest
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "bad-request", err)
		return
	}
	s.launch(w, "save", req, "")
}

// retry starts a job again with what was asked the first time: an upload
// skips what landed, so it sends what failed.
func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	j := s.jobs.find(r.PathValue("id"))
	if j == nil {
		apiError(w, http.StatusNotFound, "no-job", nil)
		return
	}
	if !j.finished() {
		apiError(w, http.StatusConflict, "running", nil)
		return
	}
	s.launch(w, j.kind, j.req, j.id)
}

// launch checks a request and starts its job.
func (s *Server) launch(w http.ResponseWriter, kind string, req any, retryOf string) {
	var (
		bundle, target string
		wk             work
		err            error
	)
	switch req := req.(type) {
	case verifyRequest:
		bundle = req.Bundle
		wk, err = s.verifyWork(req)
	case UploadRequest:
		bundle, target = req.Bundle, req.Target
		wk, err = s.uploadWork(req)
	case SaveRequest:
		wk, err = s.saveWork(req)
	default:
		err = errors.New("unknown job")
	}
	if err != nil {
		code := "bad-request"
		if errors.Is(err, errNoBundle) {
			code = "no-bundle"
		}
		apiError(w, http.StatusBadRequest, code, err)
		return
	}
	j, existing, err := s.jobs.start(kind, bundle, target, req, wk)
	if err != nil {
		apiError(w, http.StatusTooManyRequests, "busy", err)
		return
	}
	if retryOf != "" && !existing {
		j.mu.Lock()
		j.retryOf = retryOf
		j.mu.Unlock()
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": j.id, "existing": existing})
}

func (s *Server) verifyWork(req verifyRequest) (work, error) {
	p, err := s.bundlePath(req.Bundle)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, j *job) error {
		err := s.opts.Engine.Verify(ctx, p, j.prog)
		if err != nil && ctx.Err() == nil {
			j.mu.Lock()
			j.errCode, j.problems = "problems", strings.Split(err.Error(), "\n")
			j.mu.Unlock()
		}
		return err
	}, nil
}

func (s *Server) uploadWork(req UploadRequest) (work, error) {
	p, err := s.bundlePath(req.Bundle)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Target) == "" {
		return nil, errors.New("no target")
	}
	m, err := s.bundles.meta(req.Bundle)
	if err != nil {
		return nil, err
	}
	req.Meta = p
	return func(ctx context.Context, j *job) error {
		if m.baseBlobs > 0 {
			j.mu.Lock()
			j.baseCheck = "pending"
			j.mu.Unlock()
		}
		res, err := s.opts.Engine.Upload(ctx, req, j.prog)
		j.mu.Lock()
		defer j.mu.Unlock()
		if res != nil {
			j.result = res
			if len(res.BaseMissing) > 0 {
				j.baseCheck, j.errCode = "failed", "base-missing"
			} else if len(res.Failed) > 0 {
				j.errCode = "images-failed"
			}
		}
		if err == nil && j.baseCheck == "pending" {
			j.baseCheck = "ok"
		}
		return err
	}, nil
}

func (s *Server) saveWork(req SaveRequest) (work, error) {
	if strings.TrimSpace(req.Images) == "" {
		return nil, errors.New("no images")
	}
	req.Dir = s.opts.Dir
	req.BaseMetas = nil
	for _, b := range req.Bases {
		p, err := s.bundlePath(b)
		if err != nil {
			return nil, err
		}
		req.BaseMetas = append(req.BaseMetas, p)
	}
	return func(ctx context.Context, j *job) error {
		res, err := s.opts.Engine.Save(ctx, req, j.prog)
		j.mu.Lock()
		defer j.mu.Unlock()
		if res != nil {
			j.result = res
			if res.Meta != "" {
				j.bundle = filepath.Base(res.Meta)
			}
			if len(res.Failed) > 0 {
				j.errCode = "images-failed"
			}
		}
		return err
	}, nil
}

// bundlePath is the path of a meta file of the directory that exists.
func (s *Server) bundlePath(file string) (string, error) {
	if _, err := s.bundles.meta(file); err != nil {
		return "", err
	}
	return s.bundles.path(file)
}
