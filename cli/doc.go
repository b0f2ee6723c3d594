// Package cli implements the mpsearch command line: subcommands, flag
// parsing, progress on stderr and results on stdout. It stays thin: the
// work is done by package pipeline and the packages below it.
//
// Exit status: 0 on success, 1 on errors in the input or the job, 2 on
// usage errors (unknown subcommand or flag, missing or malformed flag
// values, repeated budget flags, duplicate --bits, size-like flags beyond
// their bounds: --points, --probes, --batch, --resize; --threads is capped
// at the CPUs available). An interrupted job (SIGINT, SIGTERM) writes
// nothing and exits 1 saying so.
package cli
