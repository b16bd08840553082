package main

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/torchless/torchless/bindings/go/torchless"
)

// maxBody bounds a request body (texts are short; a large body is refused, not buffered).
const maxBody = 1 << 20

type embedRequest struct {
	Texts []string `json:"texts"`
}

type embedResponse struct {
	Model      string      `json:"model"`
	Dim        int         `json:"dim"`
	Embeddings [][]float32 `json:"embeddings"`
}

type errorResponse struct {
	Error string `json:"error"`
}

// NewHandler serves POST /embed {"texts": [...]} with the model: 200 {"model", "dim",
// "embeddings"}, 400 for a bad request (invalid JSON, empty or invalid texts), 405 for another
// method, 503 once the model is closed, 500 otherwise. One model serves every request
// concurrently; each request's context reaches Embed.
func NewHandler(m *torchless.Model) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/embed", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, errorResponse{"use POST"})
			return
		}
		var req embedRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{"invalid JSON body: " + err.Error()})
			return
		}
		vecs, err := m.Embed(r.Context(), req.Texts)
		var te *torchless.Error
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, embedResponse{Model: m.Info().Name, Dim: m.Info().OutputDim, Embeddings: vecs})
		case errors.As(err, &te) && te.Status == torchless.StatusInvalidArgument:
			writeJSON(w, http.StatusBadRequest, errorResponse{err.Error()})
		case errors.Is(err, torchless.ErrClosed):
			writeJSON(w, http.StatusServiceUnavailable, errorResponse{err.Error()})
		default:
			writeJSON(w, http.StatusInternalServerError, errorResponse{err.Error()})
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
