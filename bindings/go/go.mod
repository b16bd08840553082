module github.com/torchless/torchless/bindings/go

go 1.19
