package cli

import (
	"net/http"

	"github.com/spf13/pflag"

	"github.com/kura-cc/kura/server"
)

// aggregatorFlags configure the aggregator role (`kura serve --roles
// aggregator`).
type aggregatorFlags struct {
	tasks    []string
	identity string
	ca       string
}

func (a *aggregatorFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&a.tasks, "aggregator-task", nil, "the aggregator role's task file ('kura mpc task new' writes leader.json and helper.json; mode 0600) (repeatable)")
	fs.StringVar(&a.identity, "aggregator-identity", "", "the aggregator role's party directory ('kura party init'): the task's leader or helper")
	fs.StringVar(&a.ca, "aggregator-ca", "", "trust this PEM certificate, besides the system roots, when the leader calls a task's helper")
}

// config returns the aggregator role's configuration.
func (a *aggregatorFlags) config() (server.Aggregator, error) {
	var hc *http.Client
	if a.ca != "" {
		var err error
		if hc, err = clientTLS(a.ca, 16); err != nil {
			return server.Aggregator{}, err
		}
	}
	return server.Aggregator{TaskFiles: a.tasks, IdentityDir: a.identity, HTTP: hc}, nil
}
