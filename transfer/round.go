package transfer

import (
	"context"
	"time"

	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/selection"
)

// RoundSource is what a sync round reads: images and their tag lists.
type RoundSource interface {
	oci.Source
	oci.TagLister
}

// SyncRound is one round of `ferry sync`: it expands the tag selections of
// images (an entry whose selection fails is a failure; the others go on)
// and syncs what they expand to. progress, called only when there is
// something to sync, gives the round's Progress and the function that
// stops it. failed lists every image copy that failed, selections
// included; err is Sync's.
func SyncRound(ctx context.Context, src RoundSource, targets []SyncTarget, images []SyncImage, expand selection.ExpandOptions, opts SyncOptions, progress func() (oci.Progress, func())) (res *SyncResult, failed []ImageError, err error) {
	expanded, failed := ExpandSyncImages(ctx, src, images, expand)
	if len(expanded) > 0 {
		p, stop := progress()
		opts.Progress = p
		res, err = Sync(ctx, src, targets, expanded, opts)
		stop()
	}
	if res != nil {
		failed = append(failed, res.Failed...)
	}
	return res, failed, err
}

// Watch runs round every interval until ctx is done and returns how many
// rounds ran. Round n (from 1) gets its own context and stop: once ctx is
// done, stop is closed (the round lets what is in flight land) and the
// round's context is canceled grace later. An error of round ends Watch
// with that error.
func Watch(ctx context.Context, every, grace time.Duration, round func(ctx context.Context, stop <-chan struct{}, n int) error) (int, error) {
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(grace):
				cancel()
			case <-hard.Done():
			}
		case <-hard.Done():
		}
	}()
	for n := 1; ; n++ {
		if err := round(hard, ctx.Done(), n); err != nil {
			return n, err
		}
		select {
		case <-ctx.Done():
			return n, nil
		case <-time.After(every):
		}
	}
}
