// dockerfile-lint runs BuildKit's own Dockerfile checks (the ones `docker
// build --check` runs) on a file, without a BuildKit daemon or a registry:
// hadolint cannot be had here, and BuildKit's linter is a Go library.
//
// Usage: dockerfile-lint FILE. Prints FILE:LINE: Rule: detail for every
// warning; exits 1 if there is any or the file does not parse, 0 otherwise.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/opencontainers/go-digest"
)

// offlineImages answers every base image lookup with an empty Linux image
// config: there is no registry to ask. Rules about the Dockerfile itself
// still run; what depends on a base image's own environment sees none.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	config := []byte(`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}}`)
	return ref, digest.FromBytes(config), config, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-lint FILE")
		os.Exit(2)
	}
	file := os.Args[1]
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Warnings point into a source map, which must name some LLB definition;
	// a local context stands in for the build context no daemon provides.
	ctx := context.Background()
	local := llb.Local("context")
	definition, err := local.Marshal(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	source := llb.NewSourceMap(&local, file, "Dockerfile", data)
	source.Definition = definition
	results, err := dockerfile2llb.DockerfileLint(ctx, data, dockerfile2llb.ConvertOpt{
		SourceMap:    source,
		MetaResolver: offlineImages{},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	failed := false
	for _, w := range results.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		fmt.Printf("%s:%d: %s: %s\n", file, line, w.RuleName, w.Detail)
		failed = true
	}
	if results.Error != nil {
		fmt.Printf("%s: does not parse: %s\n", file, results.Error.Message)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}
