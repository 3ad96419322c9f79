// compose-check loads a Compose file the way `docker compose config` does, with
// compose-go (the library Docker Compose is built on): the file is validated against
// the Compose Specification JSON schema bundled in compose-go, variables are
// interpolated (a `${VAR:?message}` without a value is an error), and the model is
// checked for consistency (unknown networks, volumes, secrets, depends_on targets).
// It prints the resolved model as YAML, or the error and exits 1.
//
//	compose-check [--env-file FILE] compose.yml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	envFile := flag.String("env-file", "", "environment file for interpolation (like docker compose --env-file)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [--env-file FILE] compose.yml")
		os.Exit(2)
	}
	opts := []cli.ProjectOptionsFn{cli.WithOsEnv, cli.WithConsistency(true)}
	if *envFile != "" {
		opts = append(opts, cli.WithEnvFiles(*envFile), cli.WithDotEnv)
	}
	options, err := cli.NewProjectOptions([]string{flag.Arg(0)}, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
