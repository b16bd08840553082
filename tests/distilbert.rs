//! DistilBERT sentence embeddings against real PyTorch + sentence-transformers outputs
//! (`tests/fixtures/distilbert`, made by `scripts/make_fixtures.py distilbert`): BERT's
//! WordPiece tokenizer, no token types, BERT's post-norm layers under DistilBERT's names.

use crate::encoder_fixture::EncoderFixture;

const FX: EncoderFixture = EncoderFixture {
    family: "distilbert",
    dim: 32,
};

#[test]
fn distilbert_tokenization_matches_the_python_tokenizer() {
    FX.tokenization(24);
}

#[test]
fn distilbert_hidden_states_match_pytorch_padded_batch() {
    FX.hidden_states();
}

#[test]
fn distilbert_embeddings_match_sentence_transformers() {
    FX.embeddings(&[1, 3, 8]);
}

#[test]
fn distilbert_embedding_does_not_depend_on_batch_padding() {
    FX.padding_invariance("Café naïve résumé à l'été");
}

/// A `DistilBertForMaskedLM` layout (keys under `distilbert.`, a `vocab_projector.bias`) built
/// from `tiny-st` (the fixture does not store one) loads, with the model's 40 positions.
#[test]
fn distilbert_prefixed_masked_lm_checkpoint_loads() {
    let tmp = tempfile::tempdir().unwrap();
    FX.prefixed_folder(
        tmp.path(),
        "distilbert.",
        "vocab_projector.bias",
        1200,
        "DistilBertForMaskedLM",
    );
    FX.same_hidden_states(tmp.path(), 40, |_| true);
}

#[test]
fn distilbert_embed_cli_json() {
    FX.embed_cli();
}
