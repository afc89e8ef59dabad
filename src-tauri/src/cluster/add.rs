//! `POST /add`: content in, pin out.
//!
//! IPFS Cluster's adder builds the DAG inside the cluster peer and sends blocks to IPFS (or
//! shards them over peers). Here the upload streams straight through to this peer's IPFS,
//! which builds the DAG with the requested layout options, and the root is then pinned with
//! the pin options like any other pin: allocated peers fetch the blocks from this peer's IPFS
//! over bitswap. That is IPFS Cluster's `local=true` behaviour for every add; the `local`
//! flag is accepted and changes nothing (README, "Adding content").

use futures::stream::BoxStream;
use futures::StreamExt;

use super::Cluster;
use crate::components::{AddFormat, AddRequest, AddedNode, ByteStream};
use crate::error::{Error, Result};
use crate::types::AddedOutput;

fn output(node: AddedNode, allocations: Vec<String>) -> AddedOutput {
    AddedOutput {
        name: node.name,
        cid: node.cid,
        bytes: 0,
        size: node.size,
        allocations,
    }
}

impl Cluster {
    /// A CAR upload: its blocks into IPFS, then its single root pinned.
    async fn add_car(
        &self,
        content_type: &str,
        body: ByteStream,
        req: AddRequest,
    ) -> Result<BoxStream<'static, Result<AddedOutput>>> {
        let car = super::car::open(content_type, body).await?;
        let root = car.root;
        tracing::info!(cid = %root, "importing a CAR");
        self.ipfs.dag_import(&car.name, car.bytes).await?;
        let allocations = if req.no_pin {
            Vec::new()
        } else {
            let mut opts = req.pin;
            if opts.name.is_empty() {
                opts.name = car.name.clone();
            }
            self.pin(root, opts).await?.allocations
        };
        let out = AddedOutput {
            name: car.name,
            cid: root,
            bytes: 0,
            size: 0,
            allocations,
        };
        Ok(futures::stream::once(futures::future::ready(Ok(out))).boxed())
    }

    /// Streams the multipart `body` into IPFS and yields every node added, the root last,
    /// once it is pinned (unless `no_pin`). Bad options are refused before anything is read.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn add_stream(
        &self,
        content_type: &str,
        body: ByteStream,
        mut req: AddRequest,
    ) -> Result<BoxStream<'static, Result<AddedOutput>>> {
        if !req.no_pin {
            self.check_ready()?;
            self.complete_options(&mut req.pin)?;
        }
        if req.format == AddFormat::Car {
            return self.add_car(content_type, body, req).await;
        }
        let mut nodes = self
            .ipfs
            .add_multipart(content_type, body, &req.ipfs)
            .await?;
        let cluster = self.clone();
        Ok(async_stream::try_stream! {
            // Every node goes out as IPFS reports it, except the last (the root), which
            // waits for its pin.
            let mut last: Option<AddedNode> = None;
            while let Some(node) = nodes.next().await {
                if let Some(done) = last.replace(node?) {
                    yield output(done, Vec::new());
                }
            }
            let root = last.ok_or_else(|| {
                Error::BadInput("nothing was added: the request held no file".into())
            })?;
            let allocations = if req.no_pin {
                Vec::new()
            } else {
                let mut opts = req.pin;
                if opts.name.is_empty() {
                    opts.name = root.name.clone();
                }
                tracing::info!(cid = %root.cid, "added; pinning the root");
                cluster.pin(root.cid, opts).await?.allocations
            };
            yield output(root, allocations);
        }
        .boxed())
    }
}
