// Package workers runs indexed work items on a fixed number of
// goroutines: the one loop that the sensitivity oracle's mini-batches and
// the verifier's held-out batches share.
//
// Invariants: every item i < n runs at most once, on one of
// max(1, min(threads, n)) goroutines, in an order that depends on the
// scheduler; callers write only per-item storage and combine the results
// in index order afterwards, so what they compute does not depend on the
// thread count. Items not yet started when the context is cancelled do
// not run. The error returned is that of the lowest failed index (the
// context's error for items skipped after a cancel).
package workers

import (
	"context"
	"sync"
)

// ForEach runs f(i) for every i < n on up to threads goroutines and returns
// the error of the lowest index that failed, nil if none did.
func ForEach(ctx context.Context, n, threads int, f func(i int) error) error {
	errs := make([]error, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(threads, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if errs[i] = ctx.Err(); errs[i] == nil {
					errs[i] = f(i)
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
