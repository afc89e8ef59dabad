//! Exporting the peer's `tracing` spans with OpenTelemetry (OTLP over HTTP), when
//! `observations.tracing.enable_tracing` is set or the daemon runs with `--tracing`.
//!
//! IPFS Cluster sends its traces to a Jaeger agent (`jaeger_agent_endpoint`, UDP). Jaeger and
//! every other tracing backend now take OTLP, so that is what is sent: to
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` when set (the
//! OpenTelemetry standard variables, as are `OTEL_BSP_*` for batching), else to
//! `http://localhost:4318/v1/traces`. `sampling_prob` and `service_name` are honoured.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::config::TracingConfig;
use crate::error::Error;

/// The running exporter: [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Where traces go: the standard variables, else the OTLP/HTTP default.
fn endpoint() -> String {
    if let Ok(e) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return e;
    }
    let base = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap_or_else(|_| "http://localhost:4318".into());
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

impl Telemetry {
    /// Starts the exporter; returns it with the `tracing` layer that feeds it.
    pub fn start<S>(
        cfg: &TracingConfig,
    ) -> Result<(Telemetry, impl tracing_subscriber::Layer<S>), Error>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint())
            .build()
            .map_err(|e| Error::BadInput(format!("observations.tracing: {e}")))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sampling_prob.clamp(0.0, 1.0),
            ))))
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("ipfs-cluster");
        let layer = tracing_opentelemetry::layer().with_tracer(tracer);
        Ok((Telemetry { provider }, layer))
    }

    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("tracing export: {e}");
        }
    }
}
