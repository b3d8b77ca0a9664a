// Command carreractl is the operator's tool for a carrera deployment: it
// writes and reads the ZooKeeper configuration nodes the proxies run from
// (zookeeper-layout.md), binds topics to pproxy instances, sends test
// messages through a pproxy, pulls them through a cproxy and reads Kafka
// topics back.
//
// Usage:
//
//	carreractl [-zk host:port[,host:port]/chroot] <command> [flags] [args]
//
// Run carreractl without arguments for the command list. Exit status: 0 on
// success, 1 on failure, 2 on a usage error.
//
// Commands live in a tree (see commands below) so that groups such as
// "topic" can grow more verbs without changing the dispatcher.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const defaultZK = "127.0.0.1:2181/carrera/v4/config"

// env is what a command runs with. Tests build their own with a fake store.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer

	zkAddr    string
	zkTimeout time.Duration
	// openStore connects to ZooKeeper; replaced by tests.
	openStore func(addr string, timeout time.Duration) (store, error)
	st        store

	// cmdName ("topic put") and cmdSynopsis describe the running command.
	cmdName     string
	cmdSynopsis string
}

// store returns the ZooKeeper store, connecting on first use so that
// commands that do not need ZooKeeper never dial it.
func (e *env) store() (store, error) {
	if e.st == nil {
		st, err := e.openStore(e.zkAddr, e.zkTimeout)
		if err != nil {
			return nil, err
		}
		e.st = st
	}
	return e.st, nil
}

func (e *env) close() {
	if e.st != nil {
		e.st.Close()
		e.st = nil
	}
}

// command is a node of the command tree: either runnable (run != nil) or a
// group of sub-commands.
type command struct {
	name     string
	synopsis string // arguments, e.g. "<path> <file.json>"
	short    string
	run      func(e *env, args []string) error
	sub      []*command
}

// usageError makes the process exit with status 2. printed says whether
// the message and the command's usage were already written to stderr.
type usageError struct {
	msg     string
	printed bool
}

func (u *usageError) Error() string { return u.msg }

// usageErr prints msg and the command's usage, and returns a usage error.
func usageErr(fs *flag.FlagSet, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(fs.Output(), "carreractl %s: %s\n", fs.Name(), msg)
	fs.Usage()
	return &usageError{msg: msg, printed: true}
}

func commands() []*command {
	return []*command{
		{name: "put-node", synopsis: "[-force] <path> <file.json>", short: "write a node (parents created with data \"default\"); /topic/* and /pproxy/* are validated", run: cmdPutNode},
		{name: "get", synopsis: "[-pretty] <path>", short: "print a node's data", run: cmdGet},
		{name: "ls", synopsis: "<path>", short: "list a node's children", run: cmdLs},
		{name: "topic", short: "topic nodes (/topic/<name>)", sub: []*command{
			{name: "put", synopsis: "<file.json>", short: "validate a TopicConfig and write it to /topic/<topic>", run: cmdTopicPut},
		}},
		{name: "pproxy", short: "pproxy nodes (/pproxy/<ip:port>)", sub: []*command{
			{name: "put", synopsis: "<file.json>", short: "validate a PProxyConfig and write it to /pproxy/<instance>", run: cmdPProxyPut},
		}},
		{name: "group", short: "group nodes (/group/<group>)", sub: []*command{
			{name: "put", synopsis: "<file.json>", short: "validate a GroupConfig and write it to /group/<group>", run: cmdGroupPut},
		}},
		{name: "cproxy", short: "cproxy nodes (/cproxy/<ip:port>)", sub: []*command{
			{name: "put", synopsis: "<file.json>", short: "validate a CProxyConfig and write it to /cproxy/<instance>", run: cmdCProxyPut},
		}},
		{name: "bind", synopsis: "-topic T -cluster C -instance ip:port [-proxy-cluster P] [-maxtps N]", short: "serve topic T on cluster C from a pproxy instance", run: cmdBind},
		{name: "unbind", synopsis: "-topic T -instance ip:port", short: "stop serving topic T from a pproxy instance", run: cmdUnbind},
		{name: "send", synopsis: "-addr ip:port -topic T [-key K] [-tag t] [-n N] [-body text] [-timeout ms]", short: "sendSync messages through a pproxy (framed + compact Thrift)", run: cmdSend},
		{name: "pull", synopsis: "-addr ip:port -group G [-topic T] [-n N] [-batch 8] [-linger 200] [-nack-first] [-idle 5s]", short: "pull messages through a cproxy and acknowledge them (framed + compact Thrift)", run: cmdPull},
		{name: "stats", synopsis: "-addr ip:port -group G [-topic T]", short: "print a group's consumed/produced offsets and lag per qid (getConsumeStats)", run: cmdStats},
		{name: "kafka-tail", synopsis: "-brokers host:port[,...] -topic T [-n N] [-from oldest|newest] [-idle 5s]", short: "print a Kafka topic's records", run: cmdKafkaTail},
		{name: "version", short: "print the version", run: func(e *env, _ []string) error {
			_, err := fmt.Fprintln(e.stdout, version)
			return err
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, openZK)
	stop()
	os.Exit(code)
}

// run parses the global flags, dispatches to a command and maps its error to
// an exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer,
	open func(string, time.Duration) (store, error),
) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, openStore: open}
	defer e.close()

	root := &command{name: "carreractl", sub: commands()}
	fs := flag.NewFlagSet("carreractl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.zkAddr, "zk", defaultZK, "ZooKeeper connect string with chroot")
	fs.DurationVar(&e.zkTimeout, "zk-timeout", 10*time.Second, "time to wait for a ZooKeeper session")
	fs.Usage = func() { printUsage(stderr, fs, root, nil) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	cmd, path, rest, err := resolve(root, fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "carreractl: %v\n", err)
		printUsage(stderr, fs, cmd, path)
		return 2
	}
	e.cmdName, e.cmdSynopsis = strings.Join(path, " "), cmd.synopsis
	if err := cmd.run(e, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue *usageError
		if errors.As(err, &ue) {
			if !ue.printed {
				fmt.Fprintf(stderr, "carreractl %s: %v\nusage: carreractl %s %s\n",
					strings.Join(path, " "), ue.msg, strings.Join(path, " "), cmd.synopsis)
			}
			return 2
		}
		fmt.Fprintf(stderr, "carreractl %s: %v\n", strings.Join(path, " "), err)
		return 1
	}
	return 0
}

// resolve walks the command tree along args. On error it returns the deepest
// group reached, for the usage message.
func resolve(root *command, args []string) (cmd *command, path []string, rest []string, err error) {
	cmd = root
	for cmd.run == nil {
		if len(args) == 0 {
			if cmd == root {
				return cmd, path, nil, errors.New("no command given")
			}
			return cmd, path, nil, fmt.Errorf("%s: no sub-command given", strings.Join(path, " "))
		}
		next := find(cmd.sub, args[0])
		if next == nil {
			return cmd, path, nil, fmt.Errorf("unknown command %q", strings.Join(append(path, args[0]), " "))
		}
		cmd, path, args = next, append(path, args[0]), args[1:]
	}
	return cmd, path, args, nil
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printUsage(w io.Writer, fs *flag.FlagSet, group *command, path []string) {
	prefix := strings.TrimSpace("carreractl " + strings.Join(path, " "))
	fmt.Fprintf(w, "usage: %s [global flags] <command> [flags] [args]\n\ncommands:\n", "carreractl")
	var walk func(cmds []*command, pre string)
	walk = func(cmds []*command, pre string) {
		for _, c := range cmds {
			name := strings.TrimSpace(pre + " " + c.name)
			if c.run != nil {
				fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(name+" "+c.synopsis), c.short)
			}
			walk(c.sub, name)
		}
	}
	walk(group.sub, strings.TrimPrefix(prefix, "carreractl"))
	fmt.Fprintf(w, "\nglobal flags:\n")
	fs.PrintDefaults()
}

// newFlagSet returns a flag set for a command that reports to stderr and
// returns errors instead of exiting.
func newFlagSet(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: carreractl %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// flags returns the flag set of the running command.
func (e *env) flags() *flag.FlagSet {
	return newFlagSet(e, e.cmdName, e.cmdSynopsis)
}

// parseFlags parses args and turns flag errors into usage errors (the flag
// package has already printed the details). nargs is the exact number of
// positional arguments the command takes.
func parseFlags(fs *flag.FlagSet, args []string, nargs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error(), printed: true}
	}
	if fs.NArg() != nargs {
		return usageErr(fs, "want %d argument(s), got %d", nargs, fs.NArg())
	}
	return nil
}

// required reports a usage error for the first empty flag value.
func required(fs *flag.FlagSet, flags ...string) error {
	for _, name := range flags {
		if f := fs.Lookup(name); f != nil && f.Value.String() == "" {
			return usageErr(fs, "flag -%s is required", name)
		}
	}
	return nil
}
