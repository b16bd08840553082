//! With feature `serve`: compiles `proto/torchless/v1/torchless.proto` with protox (pure Rust,
//! no `protoc`), generates the tonic service and prost messages from it, and writes the encoded
//! `FileDescriptorSet` that gRPC server reflection serves.

fn main() {
    #[cfg(feature = "serve")]
    if let Err(e) = grpc() {
        eprintln!("cannot compile the gRPC .proto: {e}");
        std::process::exit(1);
    }
}

#[cfg(feature = "serve")]
fn grpc() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/torchless/v1/torchless.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_file(proto)?;
    std::fs::write(
        out.join("torchless_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The client is for Rust callers and the tests, who bring their own `Channel`; the
        // library's tonic has no client transport.
        .build_transport(false)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
