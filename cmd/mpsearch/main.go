// Command mpsearch chooses a bit width for every layer of a neural network
// so that it meets a latency or size budget on a CPU with the least
// accuracy lost. Run 'mpsearch help' for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"mpsearch/cli"
)

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT says
// otherwise: near it the collector runs more often instead of letting the
// heap double, which keeps ImageNet-scale sensitivity runs within a few GiB.
// 2.5 GiB leaves room under 3 GiB for what is not Go heap (OpenBLAS
// buffers, stacks): a default ResNet18 search on 64 images peaked at
// 3.19 GB of RSS with a 3 GiB limit and at 2.67 GB with this one, in the
// same CPU time.
const memoryLimit = 2560 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
