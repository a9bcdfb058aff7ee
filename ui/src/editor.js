// The SPARQL editor: turns the page's plain <textarea id="query"> into a CodeMirror 6 editor
// with SPARQL highlighting. The textarea stays in the form and is kept in sync, so submitting,
// the downloads and the page without this bundle all work the same way.
import { EditorView, keymap, lineNumbers, highlightActiveLine } from "@codemirror/view";
import { EditorState } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { StreamLanguage, syntaxHighlighting, defaultHighlightStyle, bracketMatching } from "@codemirror/language";
import { sparql } from "@codemirror/legacy-modes/mode/sparql";

function enhance(textarea) {
  const form = textarea.form;
  const view = new EditorView({
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        lineNumbers(),
        history(),
        highlightActiveLine(),
        bracketMatching(),
        StreamLanguage.define(sparql),
        syntaxHighlighting(defaultHighlightStyle),
        // Tab indents; Escape then Tab leaves the editor (CodeMirror's keyboard escape hatch).
        keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab,
          { key: "Mod-Enter", run: () => { form?.requestSubmit(); return true; } }]),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) textarea.value = update.state.doc.toString();
        }),
        EditorView.contentAttributes.of({ "aria-label": "SPARQL query", "aria-describedby": "query-help" }),
      ],
    }),
  });
  textarea.hidden = true;
  textarea.setAttribute("aria-hidden", "true");
  textarea.parentNode.insertBefore(view.dom, textarea);
  view.dom.classList.add("cm-sparql");
  // Example links fill the editor instead of reloading the page.
  for (const link of document.querySelectorAll("[data-example]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const text = link.getAttribute("data-example");
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
      textarea.value = text;
      view.focus();
    });
  }
  window.agoraEditor = view;
}

const textarea = document.getElementById("query");
if (textarea) enhance(textarea);
