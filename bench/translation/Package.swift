// swift-tools-version:6.1
import PackageDescription

// Translation cost per request and per streamed event (OpenAI ⇄ Anthropic ⇄ Gemini), with
// ordo-one/benchmark. A separate package so CI never builds it. Run it with
// bench/translation.sh.
let package = Package(
    name: "sluice-translation-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "sluice-root"),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Translation",
            dependencies: [
                .product(name: "SluiceAPI", package: "sluice-root"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/Translation",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
