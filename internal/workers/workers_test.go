package workers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// Every index runs once, on at most threads goroutines at a time, and the
// error returned is the lowest failed index's whatever the thread count.
func TestForEach(t *testing.T) {
	for _, threads := range []int{0, 1, 2, 3, 16} {
		var running, most atomic.Int32
		ran := make([]int32, 50)
		err := ForEach(context.Background(), len(ran), threads, func(i int) error {
			r := running.Add(1)
			for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
			}
			defer running.Add(-1)
			ran[i]++
			if i == 7 || i == 31 {
				return fmt.Errorf("item %d", i)
			}
			return nil
		})
		if err == nil || err.Error() != "item 7" {
			t.Errorf("%d threads: error %v; want item 7 (the lowest failed index)", threads, err)
		}
		for i, c := range ran {
			if c != 1 {
				t.Errorf("%d threads: item %d ran %d times; want 1", threads, i, c)
			}
		}
		if m := most.Load(); m > int32(max(1, threads)) {
			t.Errorf("%d threads: %d items at once; want at most %d", threads, m, max(1, threads))
		}
	}
}

// After a cancel no new item starts and the context's error is returned.
func TestForEachCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Int32
	err := ForEach(ctx, 100, 1, func(i int) error {
		ran.Add(1)
		if i == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || ran.Load() != 4 {
		t.Errorf("got error %v after %d items; want context.Canceled after 4", err, ran.Load())
	}
	if err := ForEach(context.Background(), 0, 2, func(int) error { return errors.New("ran") }); err != nil {
		t.Errorf("no items: got %v; want nil", err)
	}
}
