//! Generates Medusa's tonic client and server from the hand-written service table (no protoc, no
//! .proto file): the messages are the prost types of `src/messages.rs`.

include!("src/service_definition.rs");

fn main() {
    println!("cargo:rerun-if-changed=src/service_definition.rs");
    let mut service = tonic_build::manual::Service::builder().name(SERVICE_NAME).package(PACKAGE);
    for rpc in RPCS {
        service = service.method(
            tonic_build::manual::Method::builder()
                .name(rpc.rust_name)
                .route_name(rpc.name)
                .input_type(format!("crate::{}", rpc.request))
                .output_type(format!("crate::{}", rpc.response))
                .codec_path("tonic_prost::ProstCodec")
                .build(),
        );
    }
    tonic_build::manual::Builder::new().compile(&[service.build()]);
}
