package ui

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"
)

// PLACEHOLDER until the --report records of issue 21 are on main: the
// console records each run it made as one JSON line of its own (Record)
// and the history page lists those.

// Record is one run in the history file.
type Record struct {
	Job       string    `json:"job"`
	Kind      string    `json:"kind"`
	Bundle    string    `json:"bundle"`
	Target    string    `json:"target,omitempty"`
	State     string    `json:"state"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"`
	Result    any       `json:"result,omitempty"`
	Error     string    `json:"error,omitempty"`
	ErrorCode string    `json:"errorCode,omitempty"`
	Problems  []string  `json:"problems,omitempty"`
}

// maxHistory bounds the records read back (the newest are kept).
const maxHistory = 1000

// history appends records to a file and reads them back.
type history struct {
	file string
	log  *slog.Logger

	mu  sync.Mutex
	mem []Record // without a file, or when it cannot be written
}

func newHistory(file string, log *slog.Logger) *history {
	return &history{file: file, log: log}
}

func (h *history) add(v JobView) {
	rec := Record{Job: v.ID, Kind: v.Kind, Bundle: v.Bundle, Target: v.Target, State: v.State, Started: v.Started,
		Ended: v.Ended, Result: v.Result, Error: v.Error, ErrorCode: v.ErrorCode, Problems: v.Problems}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.file != "" {
		err := appendLine(h.file, rec)
		if err == nil {
			return
		}
		h.log.Warn("recording the run in the history file", "file", h.file, "err", err)
	}
	h.mem = append(h.mem, rec)
	if len(h.mem) > maxHistory {
		h.mem = h.mem[len(h.mem)-maxHistory:]
	}
}

func appendLine(file string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return errors.Join(err, f.Close())
}

// list is the runs, newest first: the file's (a line that is not a record
// is skipped) and those only in memory.
func (h *history) list() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []Record{}
	if h.file != "" {
		if f, err := os.Open(h.file); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for sc.Scan() {
				var r Record
				if json.Unmarshal(sc.Bytes(), &r) == nil && r.Job != "" {
					out = append(out, r)
				}
			}
			f.Close()
		}
	}
	out = append(out, h.mem...)
	if len(out) > maxHistory {
		out = out[len(out)-maxHistory:]
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
