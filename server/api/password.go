package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/mdctl/mdctl/store"
)

// maxPassword is nova's limit: four system_metadata chunks of 255.
const maxPassword = 4 * 255

// password is nova's handle_password (nova/api/metadata/password.py). It
// reads and writes the store directly, never the cache, so a posted
// password shows on the next GET. Answers carry webob's default content
// type, text/html. What nova lets escape as an exception (a store error, a
// body that is not UTF-8 in convert_password) is eventlet's bare 500.
func (s *Server) password(w http.ResponseWriter, r *http.Request, rid, instanceID string) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		pw, err := s.store.Password(ctx, instanceID)
		if err != nil {
			s.logger(rid).Log(ctx, store.LogLevel(err), "read password", "instance", instanceID, "error", err)
			writeBare500(w)
			return
		}
		writePassword(w, pw)
	case http.MethodPost:
		cur, err := s.store.Password(ctx, instanceID)
		if err != nil {
			s.logger(rid).Log(ctx, store.LogLevel(err), "read password", "instance", instanceID, "error", err)
			writeBare500(w)
			return
		}
		if cur != "" { // nova checks the conflict before the size
			writeError(w, r, errorPage{http.StatusConflict, explainConflict})
			return
		}
		if r.ContentLength < 0 {
			// A body of unknown length (chunked): webob's content_length
			// is None and nova's "None > MAX_SIZE" a TypeError, so
			// eventlet's bare 500.
			writeBare500(w)
			return
		}
		if r.ContentLength > maxPassword {
			writeError(w, r, errorPage{http.StatusBadRequest, explainTooLarge})
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPassword+1))
		if err != nil {
			writeError(w, r, errorPage{http.StatusBadRequest, explainTooLarge})
			return
		}
		if len(body) > maxPassword {
			writeError(w, r, errorPage{http.StatusBadRequest, explainTooLarge})
			return
		}
		if !utf8.Valid(body) {
			// nova's body.decode('utf-8') raises: an unhandled 500.
			s.logger(rid).Warn("password is not UTF-8", "instance", instanceID)
			writeBare500(w)
			return
		}
		switch err := s.store.SetPassword(ctx, instanceID, string(body)); {
		case errors.Is(err, store.ErrConflict):
			writeError(w, r, errorPage{http.StatusConflict, explainConflict})
		case err != nil:
			s.logger(rid).Log(ctx, store.LogLevel(err), "store password", "instance", instanceID, "error", err)
			writeBare500(w)
		default:
			s.logger(rid).Info("password set", "instance", instanceID)
			writePassword(w, "")
		}
	default:
		writeError(w, r, errorPage{http.StatusBadRequest, explainMethods})
	}
}

func writePassword(w http.ResponseWriter, pw string) {
	h := w.Header()
	h["Content-Type"] = ctypeHTML
	h["Content-Length"] = []string{strconv.Itoa(len(pw))}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, pw)
}
