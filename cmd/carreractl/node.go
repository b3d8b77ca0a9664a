package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
)

func cmdPutNode(e *env, args []string) error {
	fs := e.flags()
	force := fs.Bool("force", false, "skip validation (write even an invalid node)")
	if err := parseFlags(fs, args, 2); err != nil {
		return err
	}
	p, file := fs.Arg(0), fs.Arg(1)
	if err := checkPath(p); err != nil {
		return usageErr(fs, "%v", err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !*force {
		if err := validateNode(p, data); err != nil {
			return fmt.Errorf("%s: %w (use -force to write it anyway)", file, err)
		}
	}
	return put(e, p, data)
}

func cmdTopicPut(e *env, args []string) error {
	return putNamed(e, args, "topic", "/topic/")
}

func cmdPProxyPut(e *env, args []string) error {
	return putNamed(e, args, "instance", "/pproxy/")
}

// putNamed writes a node whose name is a key of its own JSON (a topic's
// "topic", a pproxy's "instance").
func putNamed(e *env, args []string, nameKey, dir string) error {
	fs := e.flags()
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	file := fs.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	o, err := parseObject(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var name string
	if err := o.decode(nameKey, &name); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := checkName(nameKey, name); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	p := dir + name
	if err := validateNode(p, data); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return put(e, p, data)
}

func put(e *env, p string, data []byte) error {
	s, err := e.store()
	if err != nil {
		return err
	}
	// JSON is stored compactly, as the console writes it; other data as is.
	data = bytes.TrimSpace(data)
	var compact bytes.Buffer
	if json.Valid(data) && json.Compact(&compact, data) == nil {
		data = compact.Bytes()
	}
	created, err := writeNode(s, p, data)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if created {
		fmt.Fprintf(e.stdout, "%s: created\n", p)
	} else {
		fmt.Fprintf(e.stdout, "%s: written\n", p)
	}
	return nil
}

func cmdGet(e *env, args []string) error {
	fs := e.flags()
	pretty := fs.Bool("pretty", false, "indent JSON data")
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	p := fs.Arg(0)
	if err := checkPath(p); err != nil {
		return usageErr(fs, "%v", err)
	}
	s, err := e.store()
	if err != nil {
		return err
	}
	data, _, err := s.Get(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if *pretty {
		var b bytes.Buffer
		if json.Indent(&b, data, "", "  ") == nil {
			data = b.Bytes()
		}
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", data)
	return err
}

func cmdLs(e *env, args []string) error {
	fs := e.flags()
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	p := fs.Arg(0)
	if err := checkPath(p); err != nil {
		return usageErr(fs, "%v", err)
	}
	s, err := e.store()
	if err != nil {
		return err
	}
	children, err := s.Children(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	slices.Sort(children)
	for _, c := range children {
		fmt.Fprintln(e.stdout, path.Join(p, c))
	}
	return nil
}
