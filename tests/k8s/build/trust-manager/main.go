// Command trust-manager runs upstream trust-manager's Bundle controller and
// its validating webhook out of cluster against the test harness's
// kube-apiserver.
//
// It is upstream's cmd/trust-manager/app.NewCommand, wired again here from
// the tagged module's packages for one difference: upstream binds its
// readiness probe and metrics to 0.0.0.0 (only the port is a flag), and
// nothing in the test harness may listen beyond loopback. --bind-address
// (default 127.0.0.1) is the address of all three listeners; every other
// flag is upstream's.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/cert-manager/trust-manager/cmd/trust-manager/app"
	"github.com/cert-manager/trust-manager/cmd/trust-manager/app/options"
	trustapi "github.com/cert-manager/trust-manager/pkg/apis/trust/v1alpha1"
	"github.com/cert-manager/trust-manager/pkg/bundle"
	"github.com/cert-manager/trust-manager/pkg/webhook"
)

func newCommand() *cobra.Command {
	opts := options.New()
	bindAddress := "127.0.0.1"

	cmd := &cobra.Command{
		Use:   "trust-manager",
		Short: "trust-manager's Bundle controller and webhook, listening on --bind-address only",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Complete(); err != nil {
				return err
			}
			if net.ParseIP(bindAddress) == nil {
				return fmt.Errorf("--bind-address %q is not an IP address", bindAddress)
			}
			tlsOptions, err := app.GetTLSOptions(opts.TLSConfig)
			if err != nil {
				return fmt.Errorf("invalid flags: %s", err.Error())
			}

			log := opts.NewLogger()
			klog.SetLogger(log)
			ctrl.SetLogger(log)

			scheme := runtime.NewScheme()
			utilruntime.Must(clientgoscheme.AddToScheme(scheme))
			utilruntime.Must(trustapi.AddToScheme(scheme))

			mgr, err := ctrl.NewManager(opts.RestConfig, ctrl.Options{
				Scheme:                        scheme,
				LeaderElection:                opts.LeaderElectionConfig.Enabled,
				LeaderElectionID:              "trust-manager-leader-election",
				LeaderElectionReleaseOnCancel: true,
				LeaseDuration:                 &opts.LeaderElectionConfig.LeaseDuration,
				RenewDeadline:                 &opts.LeaderElectionConfig.RenewDeadline,
				ReadinessEndpointName:         opts.ReadyzPath,
				HealthProbeBindAddress:        net.JoinHostPort(bindAddress, strconv.Itoa(opts.ReadyzPort)),
				WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
					Port:    opts.Webhook.Port,
					Host:    bindAddress,
					CertDir: opts.Webhook.CertDir,
					TLSOpts: tlsOptions,
				}),
				Metrics: server.Options{
					BindAddress: net.JoinHostPort(bindAddress, strconv.Itoa(opts.MetricsPort)),
				},
				Cache: bundle.CacheOpts(opts.Bundle),
			})
			if err != nil {
				return fmt.Errorf("failed to create manager: %w", err)
			}
			if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
				return fmt.Errorf("failed to add webhook ready check: %v", err)
			}
			if err := mgr.AddHealthzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
				return fmt.Errorf("failed to add webhook health check: %v", err)
			}

			ctx := ctrl.SetupSignalHandler()
			logf.IntoContext(ctx, log)
			if err := bundle.SetupWithManager(ctx, mgr, opts.Bundle); err != nil {
				return fmt.Errorf("failed to register Bundle controller: %w", err)
			}
			if err := webhook.SetupWebhookWithManager(mgr); err != nil {
				return fmt.Errorf("failed to register webhook: %w", err)
			}
			return mgr.Start(ctx)
		},
	}
	opts = opts.Prepare(cmd)
	cmd.Flags().StringVar(&bindAddress, "bind-address", bindAddress,
		"Address of the readiness probe, metrics and webhook listeners (upstream: 0.0.0.0 for the first two).")
	return cmd
}

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
