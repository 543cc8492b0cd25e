// Command cert-manager-controller runs cert-manager's Certificate,
// CertificateRequest and Issuer controllers out of cluster against the test
// harness's kube-apiserver. Only the self-signed and CA issuer types are
// enabled: they are the ones the collection manages, and ACME, Vault and
// Venafi need services that cannot run on a machine without internet.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Each of these registers its controller with controllerpkg.Known().
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// Issuer backends used by the issuers/clusterissuers controllers.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

var enabled = []string{
	"issuers",
	"clusterissuers",
	"certificates-trigger",
	"certificates-issuing",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-readiness",
	"certificates-revision-manager",
	"certificaterequests-approver",
	"certificaterequests-issuer-ca",
	"certificaterequests-issuer-selfsigned",
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server (required)")
	clusterNS := flag.String("cluster-resource-namespace", "cert-manager",
		"namespace holding the Secrets that ClusterIssuers refer to")
	healthz := flag.String("healthz-address", "127.0.0.1:0",
		"loopback address for /healthz; 'ready' once all caches are synced")
	minBackoff := flag.Duration("certificate-request-minimum-backoff-duration", 5*time.Second,
		"first delay after a failed issuance (upstream default 1h)")
	maxBackoff := flag.Duration("certificate-request-maximum-backoff-duration", time.Minute,
		"longest delay after repeated failed issuances (upstream default 32h)")
	workers := flag.Int("workers", 5, "workers per controller")
	klog.InitFlags(flag.CommandLine)
	flag.Parse()

	if err := run(*kubeconfig, *clusterNS, *healthz, *minBackoff, *maxBackoff, *workers); err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: %v\n", err)
		os.Exit(1)
	}
}

func run(kubeconfig, clusterNS, healthz string, minBackoff, maxBackoff time.Duration, workers int) error {
	if kubeconfig == "" {
		return fmt.Errorf("--kubeconfig is required")
	}
	host, _, err := net.SplitHostPort(healthz)
	if err != nil {
		return fmt.Errorf("--healthz-address %q: %w", healthz, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--healthz-address %q must be a loopback IP address", healthz)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, klog.Background(), "cert-manager-controller")

	opts := controllerpkg.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   100,
		KubernetesAPIBurst: 200,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace: clusterNS,
		},
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: minBackoff,
			CertificateRequestMaximumBackoffDuration: maxBackoff,
		},
	}
	factory, err := controllerpkg.NewContextFactory(ctx, opts)
	if err != nil {
		return err
	}

	known := controllerpkg.Known()
	var names []string
	for name := range known {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range enabled {
		if known[name] == nil {
			return fmt.Errorf("controller %q is not registered (have: %s)", name, strings.Join(names, ", "))
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(enabled))
	for _, name := range enabled {
		ctrl, err := known[name](factory)
		if err != nil {
			return fmt.Errorf("constructing controller %s: %w", name, err)
		}
		wg.Go(func() {
			if err := ctrl.Run(workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", name, err)
			}
		})
	}

	// Every controller context shares the factory's informer factories;
	// start them only after all controllers registered their informers.
	shared, err := factory.Build()
	if err != nil {
		return err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())

	var ready atomic.Bool
	listener, err := net.Listen("tcp", healthz)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", healthz, err)
	}
	fmt.Printf("healthz listening on http://%s/healthz\n", listener.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "informer caches not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()

	go func() {
		for name, ok := range shared.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				errs <- fmt.Errorf("informer cache for %v did not sync", name)
				return
			}
		}
		for name, ok := range shared.SharedInformerFactory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				errs <- fmt.Errorf("informer cache for %v did not sync", name)
				return
			}
		}
		ready.Store(true)
		klog.Info("all informer caches synced; controllers running: ", strings.Join(enabled, ", "))
	}()

	var result error
	select {
	case <-ctx.Done():
	case result = <-errs:
		stop()
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(shutdown)
	wg.Wait()
	klog.Flush()
	return result
}
