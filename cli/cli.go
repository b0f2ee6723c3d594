package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// usageError marks errors that exit with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// env is what a subcommand runs with.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	// stderrTTY tells whether progress may redraw one line.
	stderrTTY bool
}

type command struct {
	summary string
	run     func(e *env, args []string) error
}

var commands = map[string]command{}

// Run executes the command line args (without the program name) and
// returns the process exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, stderrTTY: isTerminal(stderr)}
	if len(args) == 0 {
		args = []string{"search"}
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		printUsage(stdout)
		return 0
	}
	if name == "version" || name == "--version" {
		fmt.Fprintln(stdout, "mpsearch", Version)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "mpsearch: unknown command %q; run 'mpsearch help' for the list\n", name)
		return 2
	}
	err := c.run(e, args[1:])
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "mpsearch %s: %v (see 'mpsearch %s -h')\n", name, err, name)
		return 2
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "mpsearch %s: interrupted; nothing written\n", name)
		return 1
	}
	fmt.Fprintf(stderr, "mpsearch %s: %s\n", name, oneLine(err.Error()))
	return 1
}

// Version is the program version, set at link time if desired.
var Version = "0.1.0-dev"

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "mpsearch chooses a bit width for every layer of an ONNX CNN under latency/size budgets.")
	fmt.Fprintln(w, "\nUsage: mpsearch <command> [flags]   (no command: search on the built-in demo)\n\nCommands:")
	names := make([]string, 0, len(commands))
	for k := range commands {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  %-12s %s\n", k, commands[k].summary)
	}
	fmt.Fprintln(w, "\nRun 'mpsearch <command> -h' for its flags.")
}

// newFlags makes a FlagSet that reports errors instead of exiting.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: mpsearch %s\n\nFlags:\n", synopsis)
		fs.SetOutput(e.stderr)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; errors become usage errors; stray arguments too.
func parse(fs *flag.FlagSet, args []string) error {
	// The flag package prints the usage itself on -h and on errors; keep
	// it quiet and print the usage once, on -h only.
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
