// Command mpsearch chooses a bit width for every layer of a neural network
// so that it meets a latency or size budget on a CPU with the least
// accuracy lost. Run 'mpsearch help' for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"mpsearch/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
