import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App, initialTheme } from "./App";
import { browserTransport, createApi } from "./api/client";
import "./styles.css";

document.documentElement.dataset.theme = initialTheme();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App api={createApi(browserTransport())} />
  </StrictMode>,
);
