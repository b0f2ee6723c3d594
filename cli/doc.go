// Package cli implements the mpsearch command line: subcommands, flag
// parsing, progress on stderr and results on stdout. It stays thin: the
// work is done by package pipeline and the packages below it.
//
// Exit status: 0 on success, 1 on errors in the input or the job, 2 on
// usage errors (unknown subcommand or flag, missing or malformed flag
// values).
package cli
