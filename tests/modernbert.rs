//! ModernBERT sentence embeddings against real PyTorch + sentence-transformers outputs
//! (`tests/fixtures/modernbert`, made by `scripts/modernbert_fixtures.py`): BERT's WordPiece
//! tokenizer, rotary embeddings, global and local (windowed) layers, GeGLU MLPs.

use crate::encoder_fixture::EncoderFixture;

const FX: EncoderFixture = EncoderFixture {
    family: "modernbert",
    dim: 32,
};

#[test]
fn modernbert_tokenization_matches_the_python_tokenizer() {
    FX.tokenization(32);
}

#[test]
fn modernbert_hidden_states_match_pytorch_padded_batch() {
    FX.hidden_states();
}

#[test]
fn modernbert_embeddings_match_sentence_transformers() {
    FX.embeddings(&[1, 3, 7]);
}

#[test]
fn modernbert_embedding_does_not_depend_on_batch_padding() {
    // Longer than the local window (8): padding must not leak into local or global layers.
    FX.padding_invariance("Café naïve résumé à l'été");
}

/// A `ModernBertForMaskedLM` layout (keys under `model.`, a `decoder.bias`) built from
/// `tiny-st` (the fixture does not store one) loads, with the model's 64 positions.
#[test]
fn modernbert_prefixed_masked_lm_checkpoint_loads() {
    let tmp = tempfile::tempdir().unwrap();
    FX.prefixed_folder(
        tmp.path(),
        "model.",
        "decoder.bias",
        1200,
        "ModernBertForMaskedLM",
    );
    FX.same_hidden_states(tmp.path(), 64, |_| true);
}

#[test]
fn modernbert_embed_cli_json() {
    FX.embed_cli();
}
